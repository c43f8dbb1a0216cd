"""What every dashboard page shares: the SDK client, readable errors, and formatting helpers.

Pages talk to the gateway only through :class:`counterpoint.client.Client`; MLflow (the system of
record for runs and registered models) is read with ``MlflowClient`` when the package is installed.
The pure helpers (filters, file parsing, progress, highlighting) are plain functions so they can be
tested without a browser.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st
from pydantic import ValidationError

from counterpoint.client import Client
from counterpoint.errors import CounterpointError, Forbidden, InvalidInput, Unauthorized, Unavailable
from counterpoint.schemas import FieldType, JobInfo
from counterpoint.settings import Settings, get_settings

T = TypeVar("T")

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"

STATUS_STYLE: dict[str, tuple[str, str]] = {
    # status: (badge colour, material icon)
    "ok": ("green", "check_circle"),
    "degraded": ("orange", "warning"),
    "down": ("red", "cancel"),
    "pending": ("gray", "schedule"),
    "running": ("blue", "play_circle"),
    "succeeded": ("green", "check_circle"),
    "failed": ("red", "error"),
    "cancelled": ("gray", "block"),
}


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


# --- formatting ------------------------------------------------------------------------------


def badge(status: str) -> str:
    """A coloured Markdown badge for a status: ``:green-badge[:material/check_circle: ok]``."""
    colour, material = STATUS_STYLE.get(status, ("gray", "help"))
    return f":{colour}-badge[:material/{material}: {status}]"


def fmt_duration(seconds: float | None) -> str:
    """``75`` -> ``1m 15s``; ``None`` -> ``—``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def job_progress(job: JobInfo, now: datetime | None = None) -> tuple[float | None, float | None]:
    """(fraction done in [0, 1], seconds left) from the job's ``step``/``total_steps`` metrics.

    ``total_steps`` falls back to the config's ``max_steps``; the ETA extrapolates the time
    since the job was created. Either value is None when it cannot be known.
    """
    if job.status == "succeeded":
        return 1.0, 0.0
    step = job.metrics.get("step")
    total = job.metrics.get("total_steps") or job.config.get("max_steps")
    if not isinstance(step, int | float) or not isinstance(total, int | float) or total <= 0:
        return None, None
    fraction = max(0.0, min(1.0, float(step) / float(total)))
    eta = None
    if job.created_at is not None and step > 0 and not job.finished:
        now = now or datetime.now(UTC)
        elapsed = (_aware(now) - _aware(job.created_at)).total_seconds()
        eta = max(0.0, elapsed * (float(total) - float(step)) / float(step))
    return fraction, eta


# --- search helpers --------------------------------------------------------------------------

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "does",
        "for",
        "from",
        "how",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "which",
        "who",
        "why",
        "with",
    ]
)


def query_terms(query: str) -> list[str]:
    """The words of a query worth highlighting (no stopwords, at least two characters)."""
    words = re.findall(r"\w+", query.lower())
    return sorted({w for w in words if len(w) > 1 and w not in STOPWORDS}, key=len, reverse=True)


def highlight(text: str, terms: Sequence[str]) -> str:
    """HTML-escaped ``text`` with every word that starts with a query term wrapped in ``<mark>``."""
    safe = html.escape(text)
    if not terms:
        return safe
    pattern = re.compile(
        r"\b((?:" + "|".join(re.escape(html.escape(t)) for t in terms) + r")\w*)", re.IGNORECASE
    )
    return pattern.sub(r"<mark>\1</mark>", safe)


FILTER_OPS = ("=", "!=", "in", "not in", ">", ">=", "<", "<=")
_RANGE = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def coerce(value: str, kind: FieldType) -> str | int | float | bool:
    """Read a filter value typed in a text box as the indexed field's type."""
    text = value.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise InvalidInput(f"'{text}' is not a valid {kind}") from None
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise InvalidInput(f"'{text}' is not true or false")
    return text


def build_filter(
    rows: Iterable[tuple[str, str, str]], indexes: Mapping[str, FieldType]
) -> dict[str, Any] | None:
    """Turn (field, op, value) rows into a Qdrant-style filter; rows without a value are ignored."""
    must: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    for key, op, raw in rows:
        if not key or not str(raw).strip():
            continue
        if key not in indexes:
            raise InvalidInput(f"'{key}' is not an indexed field; indexed: {sorted(indexes) or 'none'}")
        kind = indexes[key]
        if op in _RANGE:
            if kind not in ("integer", "float"):
                raise InvalidInput(f"'{op}' needs a numeric field; '{key}' is {kind}")
            must.append({"key": key, "range": {_RANGE[op]: float(coerce(raw, "float"))}})
        elif op in ("in", "not in"):
            values = [coerce(v, kind) for v in str(raw).split(",") if v.strip()]
            (must if op == "in" else must_not).append({"key": key, "match": {"any": values}})
        elif op in ("=", "!="):
            (must if op == "=" else must_not).append({"key": key, "match": coerce(raw, kind)})
        else:
            raise InvalidInput(f"unknown operator '{op}'")
    if not must and not must_not:
        return None
    result: dict[str, Any] = {}
    if must:
        result["must"] = must
    if must_not:
        result["must_not"] = must_not
    return result


def parse_indexes(text: str) -> dict[str, FieldType]:
    """``"year:integer, kind:keyword"`` -> ``{"year": "integer", "kind": "keyword"}``."""
    kinds = ("keyword", "integer", "float", "bool")
    result: dict[str, FieldType] = {}
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        name, _, kind = part.partition(":")
        kind = kind or "keyword"
        if not name or kind not in kinds:
            raise InvalidInput(
                f"payload index '{part}': write FIELD:TYPE with TYPE one of {', '.join(kinds)}"
            )
        result[name] = kind  # type: ignore[assignment]
    return result


# --- uploaded files --------------------------------------------------------------------------


def _decode(data: bytes, name: str) -> str:
    if name.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def _typed(value: str, kind: FieldType | None) -> Any:
    if kind is None or value == "":
        return value
    try:
        return coerce(value, kind)
    except InvalidInput:
        return value


def parse_documents(
    name: str, data: bytes, indexes: Mapping[str, FieldType] | None = None
) -> list[dict[str, Any]]:
    """Documents from an uploaded JSONL (BEIR ``_id`` accepted) or CSV file.

    A CSV needs ``id`` and ``text`` columns; ``title`` is optional and every other column goes to
    ``metadata``, converted to the collection's payload index type where one is declared.
    """
    text = _decode(data, name)
    indexes = indexes or {}
    stem = name.removesuffix(".gz").lower()
    docs: list[dict[str, Any]] = []
    if stem.endswith((".csv", ".tsv")):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if stem.endswith(".tsv") else ",")
        missing = {"id", "text"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInput(f"{name}: the CSV needs columns id and text (missing {sorted(missing)})")
        for row in reader:
            meta = {
                k: _typed(v, indexes.get(k))
                for k, v in row.items()
                if k not in ("id", "text", "title") and k and v not in (None, "")
            }
            doc: dict[str, Any] = {"id": row["id"], "text": row["text"], "metadata": meta}
            if row.get("title"):
                doc["title"] = row["title"]
            docs.append(doc)
        return docs
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}: line {number} is not valid JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise InvalidInput(f"{name}: line {number} is not a JSON object")
        if "_id" in item and "id" not in item:
            item["id"] = item.pop("_id")
        if "id" not in item or "text" not in item:
            raise InvalidInput(f"{name}: line {number} needs 'id' and 'text'")
        extra = {k: item.pop(k) for k in list(item) if k not in ("id", "text", "title", "metadata")}
        if extra:
            item["metadata"] = {**extra, **(item.get("metadata") or {})}
        docs.append(item)
    return docs


def parse_queries(name: str, data: bytes) -> dict[str, str]:
    """Queries from a BEIR ``queries.jsonl`` (``_id``, ``text``) or a TSV ``id<TAB>text`` file."""
    text = _decode(data, name)
    queries: dict[str, str] = {}
    if name.removesuffix(".gz").lower().endswith(".tsv"):
        for row in csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 2 and row[0] not in ("query-id", "_id", "id"):
                queries[row[0]] = row[1]
        return queries
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{name}: line {number} is not valid JSON ({exc.msg})") from None
        qid = item.get("_id", item.get("id"))
        if qid is None or "text" not in item:
            raise InvalidInput(f"{name}: line {number} needs '_id' and 'text'")
        queries[str(qid)] = item["text"]
    return queries


def parse_qrels(name: str, data: bytes) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (header ``query-id  corpus-id  score``), read with ``counterpoint.datasets``."""
    import tempfile

    from counterpoint.datasets import load_qrels

    suffix = ".tsv.gz" if name.endswith(".gz") else ".tsv"
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            return load_qrels(handle.name)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(str(exc).replace(handle.name, name)) from None


# --- job templates ---------------------------------------------------------------------------


def templates(directory: Path = EXAMPLES_DIR) -> dict[str, dict[str, Any]]:
    """Job config templates from ``examples/*.yaml``: a title (first comment line) -> config.

    Empty when the examples are not shipped (an installed wheel) or PyYAML is missing.
    """
    try:
        import yaml
    except ImportError:
        return {}

    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.y*ml")):
        try:
            text = path.read_text()
            config = yaml.safe_load(text)
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(config, dict) or "data" not in config:
            continue
        first = next((ln for ln in text.splitlines() if ln.startswith("#")), "")
        title = first.lstrip("# ").split(":")[0].strip() or path.stem
        found[f"{title} ({path.name})"] = config
    return found


def validate_config(config: Mapping[str, Any]) -> str | None:
    """Validate a job config locally (values only, not data); the error message or None.

    Uses ``counterpoint.workers.config.parse_config(check_data=False)`` when the training package
    is importable (the slim UI image may lack it: the gateway validates again either way).
    """
    try:
        from counterpoint.workers.config import parse_config
    except ImportError:
        return None
    try:
        parse_config(dict(config), check_data=False)
    except CounterpointError as exc:
        return exc.message
    return None


def page_header(title: str, caption: str | None = None) -> None:
    st.title(title)
    if caption:
        st.caption(caption)
