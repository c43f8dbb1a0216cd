# syntax=docker/dockerfile:1.7
# The MLflow tracking server image: PostgreSQL backend store and S3-compatible artifacts.
# The chart passes the backend URL as MLFLOW_BACKEND_STORE_URI (from a Secret) and the
# artifact bucket with --artifacts-destination.
#
#   docker build -f infra/docker/mlflow.Dockerfile -t counterpoint/counterpoint-mlflow:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- stage 1: a virtualenv with mlflow, psycopg2 and boto3 ---------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY infra/docker/constraints.txt infra/docker/requirements-mlflow.txt /tmp/
RUN /opt/venv/bin/pip install -c /tmp/constraints.txt -r /tmp/requirements-mlflow.txt \
 && /opt/venv/bin/python -c "import mlflow.server, psycopg2, boto3"

# --- stage 2: runtime, non-root ----------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN useradd --uid 1000 --gid 100 --create-home --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true
USER 1000
WORKDIR /home/mlflow
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:5000/health', timeout=4)"]
CMD ["python", "-m", "mlflow", "server", "--host=0.0.0.0", "--port=5000"]
