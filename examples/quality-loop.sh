#!/usr/bin/env bash
# The retrieval quality loop on SciFact, through the running platform:
#   mine hard negatives from the live collection -> fine-tune the bi-encoder -> train a reranker
#   -> promote both (champion) -> re-index the collection without downtime -> evaluate before/after.
# Every training step is an MLflow run in the experiment `counterpoint`; the printed table compares
# the base model, the fine-tuned bi-encoder, and the bi-encoder + reranker on the SciFact test split.
#
# Start the platform with the reranker following its champion alias (it waits until one exists):
#   COUNTERPOINT_RERANK_MODEL=models:/scifact-reranker@champion make up
# then, in another shell (after the demo collection finished indexing: `counterpoint collections list`):
#   bash examples/quality-loop.sh
#
# CPU budget (2 cores): ~2.5 h; most of it the reranker's training, embedding the corpus (mining, re-index) and the reranker's
# evaluation. Nothing here reads the test split except the evaluations.
set -euo pipefail
cd "$(dirname "$0")/.."
COLLECTION=${COLLECTION:-scifact}
WORK=${WORK:-.counterpoint/loop}
FUSION=${FUSION:-0.7}  # first-stage weight of the fused score, chosen on a dev split (README, Rerankers)
mkdir -p "$WORK"
# An example config, training on the mined triplets instead of mining inside the job.
on_mined() {  # CONFIG TRIPLETS
  sed -e "s#^  path: counterpoint/data/scifact\$#  path: $PWD/$2#" \
      -e '/^  format: beir$/d' -e '/^  split: train$/d' -e '/^  hard_negatives:$/,/^    max_score_ratio/d' "$1"
}
latest() { counterpoint models registered "$1" --json | python -c 'import json,sys; print(json.load(sys.stdin)[0]["versions"][0]["version"])'; }

echo "== 1. before: the base model's collection"
counterpoint eval-retrieval --collection "$COLLECTION" --json | tee "$WORK/before.json"

echo "== 2. mine hard negatives from the live collection (train split)"
counterpoint mine --collection "$COLLECTION" --out "$WORK/scifact-train-triplets.jsonl"
counterpoint mine --collection "$COLLECTION" --negatives 3 --out "$WORK/scifact-train-groups.jsonl"  # the reranker's

echo "== 3. fine-tune the bi-encoder on the mined triplets"
on_mined examples/scifact-mnrl.yaml "$WORK/scifact-train-triplets.jsonl" > "$WORK/bi-encoder.yaml"
counterpoint train "$WORK/bi-encoder.yaml" --follow
counterpoint models alias scifact-minilm "$(latest scifact-minilm)"

echo "== 4. train the reranker (cross-encoder) on the same triplets"
on_mined examples/scifact-reranker.yaml "$WORK/scifact-train-groups.jsonl" > "$WORK/reranker.yaml"
counterpoint train "$WORK/reranker.yaml" --follow
counterpoint models alias scifact-reranker "$(latest scifact-reranker)"

echo "== 5. re-index the collection with the fine-tuned bi-encoder (searches keep answering)"
counterpoint reindex "$COLLECTION" --model models:/scifact-minilm@champion

echo "== 6. after"
counterpoint eval-retrieval --collection "$COLLECTION" --json | tee "$WORK/after.json"
counterpoint eval-retrieval --collection "$COLLECTION" --rerank --rerank-top-k 100 --rerank-fusion 0 --json | tee "$WORK/after-rerank.json"
counterpoint eval-retrieval --collection "$COLLECTION" --rerank --rerank-top-k 100 --rerank-fusion "$FUSION" --json | tee "$WORK/after-fused.json"
python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
rows = [("base model", "before.json"), ("fine-tuned bi-encoder", "after.json"), ("+ reranker (top 100)", "after-rerank.json"), ("+ reranker, fused", "after-fused.json")]
print(f"{'SciFact test':<26}{'nDCG@10':>9}{'R@100':>9}{'MRR@10':>9}")
for label, name in rows:
    m = json.loads((work / name).read_text())
    print(f"{label:<26}{m['ndcg_at_10']:>9.2f}{m['recall_at_100']:>9.2f}{m['mrr_at_10']:>9.2f}")
PY
