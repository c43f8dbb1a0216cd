"""Cross-worker negatives: 2 gloo workers x 16 examples == 1 process x 32 examples.

Convention compared: each worker's loss is the mean over its 16 local anchors against all 32
gathered candidates; the gather's backward sums embedding gradients over workers; parameter
gradients are then averaged over workers (DDP, or ``average_gradients``). So the mean of the two
workers' losses equals the 32-example loss, and every worker's averaged gradients equal the
32-example gradients.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from tests.workers import _distributed_worker as scenarios

WORLD = 2


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    tmp = tmp_path_factory.mktemp("gloo")
    mp.spawn(scenarios.worker, args=(WORLD, str(tmp / "store"), str(tmp)), nprocs=WORLD, join=True)
    return [torch.load(Path(tmp) / f"rank{rank}.pt") for rank in range(WORLD)]


@pytest.mark.parametrize("name", list(scenarios.SCENARIOS))
def test_two_workers_match_one_process_on_the_global_batch(worker_results: list[dict], name: str) -> None:
    reference = scenarios.run_scenario(name, rank=0, world=1)
    per_worker = [result[name] for result in worker_results]
    mean_loss = sum(r["loss"] for r in per_worker) / WORLD
    assert mean_loss == pytest.approx(reference["loss"], abs=1e-5)
    for result in per_worker:
        assert result["grads"].keys() == reference["grads"].keys()
        for param, expected in reference["grads"].items():
            got = result["grads"][param]
            assert torch.allclose(got, expected, atol=1e-5), (param, (got - expected).abs().max().item())


def test_without_gathering_the_workers_see_fewer_negatives(worker_results: list[dict]) -> None:
    """Sanity check that the comparison above is sensitive: local-only negatives give another loss."""
    reference = scenarios.run_scenario("infonce", rank=0, world=1)
    mean_loss = sum(result["no_gather"]["loss"] for result in worker_results) / WORLD
    assert mean_loss < reference["loss"] - 0.1  # 15 negatives per anchor instead of 31: an easier task
