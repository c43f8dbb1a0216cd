# syntax=docker/dockerfile:1.7
# The dashboard image: Streamlit and the counterpoint SDK, no torch or Ray (the UI talks to
# the gateway over HTTP only).
#
#   docker build -f infra/docker/ui.Dockerfile -t counterpoint/counterpoint-ui:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- stage 1: a virtualenv with the UI's dependencies and the counterpoint wheel -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install setuptools==84.2.1 wheel==0.48.0 \
 && python -m venv /opt/venv
WORKDIR /src
COPY infra/docker/constraints.txt infra/docker/requirements-ui.txt /tmp/
RUN /opt/venv/bin/pip install -c /tmp/constraints.txt -r /tmp/requirements-ui.txt
COPY pyproject.toml setup.py README.md ./
COPY counterpoint ./counterpoint
COPY services ./services
COPY workers ./workers
COPY infra ./infra
COPY ui ./ui
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/counterpoint-*.whl \
 && /opt/venv/bin/python -c "import counterpoint.client, counterpoint.settings, streamlit"

# --- stage 2: runtime, non-root ----------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN useradd --uid 1000 --gid 100 --create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
USER 1000
WORKDIR /home/app
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["python", "-m", "streamlit", "run", "/opt/venv/lib/python3.11/site-packages/counterpoint/ui/app.py", \
     "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
