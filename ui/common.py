"""What every dashboard page shares: the SDK client, the MLflow client and links, readable errors.

Pages talk to the gateway only through :class:`counterpoint.client.Client`; MLflow (the system of
record for runs and registered models) is read with ``MlflowClient`` when the package is installed.
The pure helpers live beside this module, one job each: `formatting` (badges, durations, job
progress), `search_inputs` (filters, index specs, highlighting), `uploads` (documents, queries and
qrels files) and `job_templates` (example configs, local validation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st
from pydantic import ValidationError

from counterpoint.client import Client
from counterpoint.errors import CounterpointError, Forbidden, Unauthorized, Unavailable
from counterpoint.settings import Settings, get_settings

T = TypeVar("T")

# --- clients ---------------------------------------------------------------------------------


def settings() -> Settings:
    return get_settings()


@st.cache_resource(show_spinner=False)
def _client(url: str) -> Client:
    return Client(url, timeout=120)


def client() -> Client:
    """The SDK client of the configured gateway, shared by every session of this server."""
    return _client(settings().gateway_url)


@st.cache_resource(show_spinner=False)
def _mlflow(tracking_uri: str) -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError:
        return None
    return MlflowClient(tracking_uri=tracking_uri)


def mlflow_client() -> Any | None:
    """``MlflowClient`` of the tracking server, or None when the mlflow package is not installed."""
    return _mlflow(settings().tracking_uri)


def mlflow_ui_url() -> str:
    return settings().tracking_uri.rstrip("/")


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    return f"{mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def mlflow_model_url(name: str, version: str | None = None) -> str:
    base = f"{mlflow_ui_url()}/#/models/{name}"
    return f"{base}/versions/{version}" if version else base


def ray_dashboard_url() -> str:
    return settings().job_api_url.rstrip("/")


# --- errors ----------------------------------------------------------------------------------


def error_text(exc: BaseException) -> str:
    """A one-paragraph, human message for an exception raised by the SDK or MLflow."""
    if isinstance(exc, Unavailable):
        return f"The gateway at {settings().gateway_url} is not reachable or not ready: {exc.message}"
    if isinstance(exc, Unauthorized | Forbidden):
        return (
            f"{exc.message}. The dashboard sends COUNTERPOINT_API_KEY (else {settings().admin_key_file}); "
            "give it a key with the scopes this page needs (`counterpoint keys create`)."
        )
    if isinstance(exc, CounterpointError):
        kind = getattr(exc, "type", "error").replace("_", " ")
        return f"{kind} ({exc.status_code}): {exc.message}"
    if isinstance(exc, ValidationError):  # the SDK validates request bodies before sending them
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or exc.title
        return f"invalid {field}: {str(first['msg']).removeprefix('Value error, ')}"
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {message.strip().splitlines()[0][:500]}"


def show_error(exc: BaseException, where: Any = None) -> None:
    """Show an error as ``st.error`` with its message, never a traceback."""
    (where or st).error(error_text(exc), icon=":material/error:")


def call(
    fn: Callable[..., T], *args: Any, spinner: str | None = None, where: Any = None, **kwargs: Any
) -> T | None:
    """Run ``fn(*args, **kwargs)``; on a gateway (or any) error show it and return None."""
    try:
        if spinner:
            with st.spinner(spinner):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)
    except CounterpointError as exc:
        show_error(exc, where)
    except Exception as exc:  # noqa: BLE001 - a dashboard shows every failure as a message
        show_error(exc, where)
    return None


def require_gateway() -> Client:
    """The client, after checking the gateway answers; stops the page with a clear message if not."""
    cp = client()
    try:
        cp.health()
    except CounterpointError as exc:
        show_error(exc)
        st.info("Start the platform with `counterpoint up` (or `make up`), then reload this page.")
        st.stop()
    return cp


def page_header(title: str, caption: str | None = None) -> None:
    st.title(title)
    if caption:
        st.caption(caption)
