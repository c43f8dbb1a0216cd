"""Screenshots of the dashboard's main pages for the README (not a test).

    python -m tests.ui.screenshots --url http://127.0.0.1:8501 --out docs/screenshots \
        --collection scifact --query "vitamin D and bone density" [--job JOB_ID] [--year-from 2010] [--generate]

Point it at a running `counterpoint up` that holds a collection, a few jobs and MLflow runs; it
opens each page in headless Chromium, runs a search, and writes overview.png, jobs.png,
collections.png, compare.png, models.png and playground.png.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from tests.ui.test_browser import CHROMIUM, CHROMIUM_ARGS

WIDTH = 1400


def _settle(page: Any, heading: str, wait_ms: int = 2500) -> None:
    page.get_by_role("heading", name=heading, exact=True).wait_for()
    page.wait_for_timeout(wait_ms)


def _capture(page: Any, path: Path, max_height: int = 2600) -> None:
    """Grow the viewport to the page's content (Streamlit scrolls inside its own container), then shoot."""
    height = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": WIDTH, "height": min(max_height, max(900, int(height) + 40))})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    print(f"wrote {path}")


def take(
    url: str,
    out: Path,
    collection: str | None,
    query: str,
    job: str | None = None,
    year_from: int | None = None,
    generate: bool = False,
) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
        page.set_default_timeout(60_000)

        page.goto(url)
        _settle(page, "Counterpoint")
        _capture(page, out / "overview.png")

        page.goto(f"{url}/jobs" + (f"?job={job}" if job else ""))
        _settle(page, "Jobs", 6000)
        _capture(page, out / "jobs.png", max_height=3000)

        page.goto(f"{url}/collections" + (f"?collection={collection}" if collection else ""))
        _settle(page, "Collections")
        box = page.get_by_label("query", exact=True)
        box.fill(query)
        box.press("Enter")
        page.get_by_text(re.compile(r"\d+ hits in \d+ ms")).wait_for()
        if year_from is not None:  # show the filter editor: year >= year_from
            page.get_by_text("metadata filters").click()
            page.get_by_role("button", name=re.compile("add a filter")).click()
            page.get_by_label("field", exact=True).click()
            page.get_by_role("option", name="year", exact=True).click()
            page.get_by_label("operator", exact=True).click()
            page.get_by_role("option", name=">=", exact=True).click()
            value = page.get_by_label("value", exact=True)
            value.fill(str(year_from))
            value.press("Enter")
            page.get_by_text(re.compile(r"filter `")).wait_for()
        _capture(page, out / "collections.png", max_height=2200)

        for name, heading in (("compare", "Compare runs"), ("models", "Models")):
            page.goto(f"{url}/{name}")
            _settle(page, heading, 4000)
            _capture(page, out / f"{name}.png", max_height=3400)

        page.goto(f"{url}/playground")
        _settle(page, "Playground", 4000)
        if generate and page.get_by_text("compare every decoding method").count():
            page.get_by_text("compare every decoding method").click()
            slider = page.get_by_role("slider")
            slider.focus()
            for _ in range(4):  # 64 -> 32 tokens
                slider.press("ArrowLeft")
            page.get_by_role("button", name=re.compile("Generate")).click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
                ".filter(e => e.innerText.includes('finish:')).length >= 4",
                timeout=300_000,
            )
        _capture(page, out / "playground.png", max_height=3400)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8501")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--collection", default=None)
    parser.add_argument("--query", default="vitamin D and bone density")
    parser.add_argument("--job", default=None, help="job id to show on the Jobs page")
    parser.add_argument(
        "--year-from", type=int, default=None, help="add a filter year >= this (needs a 'year' index)"
    )
    parser.add_argument("--generate", action="store_true", help="run every decoding method in the playground")
    args = parser.parse_args()
    take(args.url.rstrip("/"), args.out, args.collection, args.query, args.job, args.year_from, args.generate)


if __name__ == "__main__":
    main()
