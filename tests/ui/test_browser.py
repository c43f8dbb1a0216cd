"""The dashboard in a real headless Chromium (playwright), served by `counterpoint up`.

Screenshots land in ``test-artifacts/`` (git-ignored). Chromium comes from the system
(`infra/tools/apt_install.sh`, run by `make install`); without it these tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the fixture below skips (or fails on CI) with the reason
    expect = None  # type: ignore[assignment]

from tests.ui.conftest import ARTIFACTS, COLLECTION, RAY_AGENT_BUSY, UIStack

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("COUNTERPOINT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
TIMEOUT_MS = 60_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    if not executable.exists():
        _unavailable(f"no Chromium at {CHROMIUM}; run infra/tools/apt_install.sh /usr/bin/chromium chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (dev extra)")
        raise
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, ui_stack: UIStack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser tab; its last state is saved as ``test-artifacts/<test>-end.png``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        with contextlib.suppress(Exception):
            shot(tab, f"{request.node.name}-end")
        context.close()


def goto(page: Any, url: str, heading: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=heading, exact=True).wait_for()


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def no_exceptions(page: Any) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, page.locator(
        "[data-testid='stException']"
    ).first.inner_text()


def test_search_in_the_browser(page: Any, ui_stack: UIStack) -> None:
    goto(page, f"{ui_stack.ui_url}/collections?collection={COLLECTION}", "Collections")
    query = page.get_by_label("query", exact=True)
    query.fill("dropout for contrastive sentence embeddings")
    query.press("Enter")
    page.get_by_text(re.compile(r"\d+ hits in \d+ ms")).wait_for()
    first = page.locator("[data-testid='stMarkdownContainer']", has_text=re.compile(r"^1\. ")).first
    assert "SimCSE" in first.inner_text() and "score" in first.inner_text()
    assert page.locator("mark", has_text=re.compile("contrastive", re.I)).count() >= 1
    no_exceptions(page)
    assert shot(page, "browser-search").stat().st_size > 10_000


def test_launch_a_job_from_the_form(page: Any, ui_stack: UIStack) -> None:
    goto(page, f"{ui_stack.ui_url}/jobs", "Jobs")
    page.get_by_label("template").click()
    page.get_by_role("option", name=re.compile("STS-B")).click()
    expect(page.get_by_label("job name")).to_have_value("stsb-cosent")  # the form follows the template
    page.get_by_label("job name").fill("browser-job")
    page.get_by_label("max steps (0: run the epochs)").fill("1")
    page.get_by_label("batch size").fill("4")
    page.get_by_role("button", name=re.compile("Validate and launch")).click()
    alerts = page.locator("[data-testid='stAlert']")
    alerts.filter(has_text=re.compile(f"Submitted job|{RAY_AGENT_BUSY}")).first.wait_for()
    cp = ui_stack.client()
    jobs = [j for j in cp.list_jobs() if j.name == "browser-job"]
    assert len(jobs) == 1, "the form did not reach the gateway"
    job = jobs[0]
    assert job.config["max_steps"] == 1 and job.config["batch_size"] == 4
    # the job picker selects it and its live panel shows it
    expect(page.get_by_label("job", exact=True)).to_have_value(re.compile(rf"^browser-job · {job.id[:8]}"))
    page.get_by_role("heading", name=re.compile(r"^browser-job")).wait_for()
    no_exceptions(page)
    shot(page, "browser-jobs")
    if not alerts.filter(has_text="Submitted job").count():
        warnings.warn("Ray's job agent was busy (another Ray cluster on this machine)", stacklevel=1)
        return
    cp.cancel_job(job.id)  # it may have finished already; either way it stops here


def test_every_page_renders_in_the_browser(page: Any, ui_stack: UIStack) -> None:
    for path, heading in (
        ("", "Counterpoint"),
        ("compare", "Compare runs"),
        ("models", "Models"),
        ("playground", "Playground"),
    ):
        goto(page, f"{ui_stack.ui_url}/{path}", heading)
        page.wait_for_timeout(1500)
        no_exceptions(page)
        shot(page, f"browser-{path or 'overview'}")
    page.locator("[data-testid='stVegaLiteChart']").first.wait_for()  # the playground heatmap
    # Viewer mode, as a deployed app: Streamlit's developer toolbar (its "Deploy" button) is hidden.
    assert page.locator("[data-testid='stAppDeployButton']").count() == 0
    assert page.get_by_role("button", name="Deploy").count() == 0
