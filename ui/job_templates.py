"""Training job configs on the jobs page: the templates shipped in ``examples/`` and a local check.

Both degrade quietly where optional parts are missing (no examples in an installed wheel, no
PyYAML, no training package in the slim UI image): the gateway validates every config again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from counterpoint.errors import CounterpointError

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


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
