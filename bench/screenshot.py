"""Regenerate docs/screenshot.png: the highlighter page on the bundled model.

.venv/bin/python bench/screenshot.py   (needs Debian's chromium and playwright)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import serve_process  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from test_page import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

ARTICLE = (Path(__file__).parent / "screenshot_article.txt").read_text(encoding="utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        model = ROOT / "models" / "rhetoric-minilm"
        with serve_process(model, log) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 1000})
            page.goto(base + "/")
            page.fill("#article", ARTICLE)
            page.click("#analyse")
            page.wait_for_selector("#doc [tabindex='0']")
            page.focus("#doc [tabindex='0']")
            page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=True)
            browser.close()


if __name__ == "__main__":
    main()
