"""Write ``infra/docker/constraints.txt``: the exact versions the images install.

The images install Counterpoint's wheel with ``pip install -c constraints.txt``, so every
package in them (transitive ones included) has the version the test suite ran with. The
file is generated from the environment this runs in (the project's ``.venv``):

    .venv/bin/python -m counterpoint.infra.tools.docker_constraints

Local version labels are dropped (``torch==2.13.0+cpu`` -> ``torch==2.13.0``; the images take
torch from the CPU index), and so are the project itself, its dev tools and pip's own tools.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO_ROOT / "infra" / "docker" / "constraints.txt"
ALWAYS_LEFT_OUT = {"counterpoint", "pip", "setuptools", "wheel"}
HEADER = (
    "# Exact versions for the container images (pip install -c). Generated from the tested\n"
    "# environment by `python -m counterpoint.infra.tools.docker_constraints`; do not edit.\n"
)


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"cannot read a project name from {requirement!r}")
    return canonical(match.group(1))


def dev_tools(pyproject: Path = REPO_ROOT / "pyproject.toml") -> set[str]:
    """Names in the dev extra: test tools, not part of any image."""
    meta = tomllib.loads(pyproject.read_text())["project"]
    return {requirement_name(r) for r in meta.get("optional-dependencies", {}).get("dev", [])}


def pins() -> dict[str, str]:
    """name -> version of every distribution in this environment that an image may need."""
    left_out = ALWAYS_LEFT_OUT | dev_tools()
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in left_out:
            out[name] = dist.version.split("+", 1)[0]
    return out


def render(versions: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))


def read(path: Path = CONSTRAINTS) -> dict[str, str]:
    """The pins of an existing constraints file."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version
    return out


def main() -> int:
    CONSTRAINTS.write_text(render(pins()))
    print(CONSTRAINTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
