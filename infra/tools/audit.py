"""Dependency audit: ``pip-audit`` over every pinned package, failing on fixable vulnerabilities.

    .venv/bin/python -m counterpoint.infra.tools.audit [--service pypi,osv] [--require-service]

What is audited: every distribution installed in the environment this runs in (the project's
``.venv``: the images' packages, which ``infra/docker/constraints.txt`` is generated from, plus
the dev tools CI runs), at its exact version, with no resolution (``--no-deps``). Local version
labels are dropped (``torch==2.13.0+cpu`` is audited as ``torch==2.13.0``: same source, and PyPI
knows no ``+cpu``); the project itself is left out (`LEFT_OUT`).

The verdict: a vulnerability with a fix version fails the audit (upgrade the pin, or list it in
`IGNORED` with the reason it cannot be upgraded); one without a fix is printed and passes.

A network failure is not a finding, and neither is it a clean bill. Before auditing, each
service is asked about a positive control, `CANARY` (a release with well-known, fixed
advisories); a service that cannot be reached (tried `TRIES` times), or that answers without
reporting the canary's advisories, is not used: pip-audit itself reports "No known
vulnerabilities" when the PyPI JSON API answers 404 for every release. With no usable service
the audit prints AUDIT SKIPPED with the reason and exits 0, or 2 with ``--require-service``
(for a machine that must audit, e.g. before a release), so CI neither fails on an outage nor
reports one as "no vulnerabilities".
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from counterpoint.infra.tools.docker_constraints import canonical

# Not audited, with why. The project is not on PyPI (an unrelated project there has its name).
LEFT_OUT: dict[str, str] = {
    "counterpoint": "this project (an unrelated PyPI project has the same name)",
}

# Vulnerabilities accepted for now: ID (or an alias, e.g. a CVE) -> why the pin cannot move.
# Each entry needs a reason and a condition for removing it, e.g.:
#   "PYSEC-2026-0000": "torch: pinned to 2.13.0 by the project brief; fixed in 2.14.0; "
#                      "remove when the brief allows torch 2.14",
# Empty: no advisory service answered for the pins here yet (see README, "Dependency audit").
IGNORED: dict[str, str] = {}

# Positive control: requests 2.19.0 has advisories fixed in 2.20.0 (CVE-2018-18074) and later.
CANARY = "requests==2.19.0"
SERVICES = ("pypi", "osv")
TRIES = 3
BACKOFF_S = 2.0

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def pinned(dists: Sequence[importlib.metadata.Distribution] | None = None) -> dict[str, str]:
    """name -> public version of every installed distribution to audit."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions() if dists is None else dists:
        name = canonical(dist.metadata["Name"] or "")
        if name and name not in LEFT_OUT:
            out[name] = dist.version.split("+", 1)[0]
    return out


def pip_audit(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run the pip-audit CLI of this environment (its JSON report is on stdout)."""
    cmd = [sys.executable, "-m", "pip_audit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)


def audit_args(requirements: Path, service: str) -> list[str]:
    return ["-r", str(requirements), "--no-deps", "--disable-pip", "-s", service, "-f", "json",
            "--progress-spinner", "off", "--timeout", "30"]  # fmt: skip


class ServiceDown(Exception):
    """The service gave no report (connection error, DNS, HTTP error, malformed answer)."""


def run_report(
    requirements: Path, service: str, run: Runner, sleep: Callable[[float], None]
) -> dict[str, Any]:
    """pip-audit's JSON report, retrying a run that produced none (a network failure)."""
    reason = "not run"
    for attempt in range(TRIES):
        if attempt:
            sleep(BACKOFF_S * attempt)
        done = run(audit_args(requirements, service))
        try:
            report = json.loads(done.stdout)
            if isinstance(report, dict) and isinstance(report.get("dependencies"), list):
                return report
            reason = "pip-audit printed no report"
        except json.JSONDecodeError:
            lines = (done.stderr or "").strip().splitlines()
            reason = lines[-1][:300] if lines else f"pip-audit exited {done.returncode} without a report"
    raise ServiceDown(reason)


def check_service(service: str, run: Runner, sleep: Callable[[float], None], workdir: Path) -> str | None:
    """None when ``service`` reports the canary's advisories, else why it cannot be used."""
    req = workdir / "canary.txt"
    req.write_text(CANARY + "\n")
    try:
        report = run_report(req, service, run, sleep)
    except ServiceDown as exc:
        return f"unreachable after {TRIES} tries: {exc}"
    for dep in report["dependencies"]:
        if dep.get("vulns"):
            return None
        if dep.get("skip_reason"):
            return f"answers without data ({dep['skip_reason']})"
    return f"reports no advisories for the control {CANARY}, which has several"


@dataclass
class Verdict:
    fixable: list[str] = field(default_factory=list)
    unfixed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    audited: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.fixable)


def judge(report: dict[str, Any], ignored: dict[str, str] | None = None) -> Verdict:
    """Sort each reported vulnerability: fixable (fails), accepted in `IGNORED`, or without a fix."""
    ignored = IGNORED if ignored is None else ignored
    verdict = Verdict()
    for dep in report.get("dependencies", []):
        name = f"{dep.get('name')}=={dep.get('version', '?')}"
        if dep.get("skip_reason"):
            verdict.skipped.append(f"{dep.get('name')}: {dep['skip_reason']}")
            continue
        verdict.audited += 1
        for vuln in dep.get("vulns", []):
            ids = [vuln.get("id", "?"), *vuln.get("aliases", [])]
            label = f"{name} {'/'.join(ids)}"
            accepted = next((ignored[i] for i in ids if i in ignored), None)
            if accepted is not None:
                verdict.ignored.append(f"{label}: {accepted}")
            elif vuln.get("fix_versions"):
                verdict.fixable.append(f"{label}: fixed in {', '.join(vuln['fix_versions'])}")
            else:
                verdict.unfixed.append(f"{label}: no fix released ({vuln.get('description', '')[:120]})")
    return verdict


def print_verdict(verdict: Verdict, service: str) -> None:
    print(f"audited {verdict.audited} packages against {service}")
    for title, items in (
        ("FIXABLE (upgrade the pin or list it in IGNORED with the reason)", verdict.fixable),
        ("known, no fix released yet (not failing)", verdict.unfixed),
        ("accepted (IGNORED in infra/tools/audit.py)", verdict.ignored),
        ("not audited (the service does not know them)", verdict.skipped),
    ):
        if items:
            print(f"{title}:")
            print("".join(f"  {item}\n" for item in items), end="")
    print("audit FAILED" if verdict.failed else "audit passed: no vulnerability with a fix")


def main(
    argv: Sequence[str] | None = None, run: Runner = pip_audit, sleep: Callable[[float], None] = time.sleep
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service", default=",".join(SERVICES), help="services to try, in order")
    parser.add_argument("--requirements", type=Path, help="audit this pinned file instead of the environment")
    parser.add_argument("--require-service", action="store_true", help="exit 2 when no service can be used")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cp-audit-") as tmp:
        workdir = Path(tmp)
        service, reasons = None, []
        for candidate in [s.strip() for s in args.service.split(",") if s.strip()]:
            reason = check_service(candidate, run, sleep, workdir)
            if reason is None:
                service = candidate
                break
            reasons.append(f"{candidate}: {reason}")
        if service is None:
            print("AUDIT SKIPPED: no advisory service could be used, so nothing was audited:")
            print("".join(f"  {r}\n" for r in reasons), end="")
            return 2 if args.require_service else 0
        requirements = args.requirements
        if requirements is None:
            requirements = workdir / "pinned.txt"
            requirements.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pinned().items())))
        try:
            report = run_report(requirements, service, run, sleep)
        except ServiceDown as exc:
            print(f"AUDIT SKIPPED: {service} answered the control but not the audit: {exc}")
            return 2 if args.require_service else 0
    verdict = judge(report)
    print_verdict(verdict, service)
    return 1 if verdict.failed else 0


if __name__ == "__main__":
    sys.exit(main())
