"""The article highlighter page: served locally and publicly, accessible colours, and a real
browser run (headless Chromium driven by Playwright) against a real `rhetoric serve`."""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.request
from pathlib import Path

import pytest
from conftest import serve_process
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

STATIC = Path(__file__).parent.parent / "service" / "static"
ASSETS = ("index.html", "app.js", "style.css")
KEY = "page-test-key"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTICLE = (
    "Minister vows tough response to leak\n\n"
    "The ministry denied that it had ignored the warnings. "
    "Those responsible will face consequences, the minister warned. "
    "Officials may delay the vote until the inquiry reports.\n\n"
    "The opposition accused the government of hiding its own failures. "
    "<b>Markup</b> in an article is shown as text. "
    "Shares fell 2.4% on Monday."
)


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> TestClient:
    return TestClient(create_app(Settings(model=tiny_model, workers=1, api_keys=[KEY])))


def test_page_and_assets_are_public_with_the_right_types(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and 'href="static/style.css"' in page.text
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in {
        "text/javascript",
        "application/javascript",
    }
    style = client.get("/static/style.css")
    assert (style.status_code, style.headers["content-type"].split(";")[0]) == (200, "text/css")
    assert client.get("/v1/model").status_code == 401, "the API stays behind the key"
    missing = client.get("/static/nothing.js")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (
        "/"
        not in client.get("/openapi.json", headers={"authorization": f"Bearer {KEY}"}).json()[
            "paths"
        ]
    )


@pytest.mark.parametrize("name", ASSETS)
def test_assets_are_local_and_render_text_safely(name):
    text = (STATIC / name).read_text()
    assert not re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), "no other hosts"
    assert "@import" not in text and "@font-face" not in text
    unsafe = r"\.(?:innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\("
    assert not re.findall(unsafe, text), "user text must go in as text, never as markup"


def luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_label_colours_meet_wcag_aa():
    css = (STATIC / "style.css").read_text()
    palette = re.findall(r"\.c(\d) \{ --strong: (#[0-9a-f]{6}); --tint: (#[0-9a-f]{6}); \}", css)
    ink = re.search(r"--ink: (#[0-9a-f]{6})", css).group(1)
    size = re.search(r"PALETTE_SIZE = (\d+)", (STATIC / "app.js").read_text()).group(1)
    assert [int(i) for i, _, _ in palette] == list(range(int(size)))
    for _, strong, tint in palette:
        assert contrast("#ffffff", strong) >= 4.5, f"chip text on {strong}"
        assert contrast(ink, tint) >= 7, f"article text on highlight {tint}"
        assert contrast(strong, tint) >= 3, f"evidence underline {strong} on {tint}"


# ---------------------------------------------------------------- the real browser


def browser_missing() -> str:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (CI installs Debian's chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (CI installs it with the dev extra)"
    return ""


def api(base: str, path: str, body: object | None = None) -> dict:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """`rhetoric serve` with an API key and a small document limit, so 401 and 413 show."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    limits = {"RHETORIC_API_KEYS": KEY, "RHETORIC_MAX_DOCUMENT_CHARS": "2000"}
    with serve_process(tiny_model, log, **limits) as base:
        yield base


def expected_labels(sentence: dict, thresholds: dict[str, float]) -> list[str]:
    """What the page must show: labels at or above threshold, highest score first."""
    fired = [lb for lb, t in thresholds.items() if sentence["scores"][lb] >= t]
    return sorted(fired, key=lambda lb: -sentence["scores"][lb])


@pytest.mark.skipif(bool(browser_missing()), reason=browser_missing() or "ready")
def test_page_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    model = api(server, "/v1/model")
    thresholds = {lb["name"]: lb["threshold"] for lb in model["labels"]}
    first = model["labels"][0]["name"]
    truth = api(server, "/v1/analyze", {"text": ARTICLE})["sentences"]

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        analyses: list[str] = []
        page.on("request", lambda r: "/v1/analyze" in r.url and analyses.append(r.url))
        page.goto(server)

        # The server wants a key: the page says so, opens the key field, and takes one.
        expect(page.locator("#error")).to_contain_text("needs an API key")
        expect(page.locator("#key-box")).to_have_attribute("open", "")
        page.fill("#api-key", KEY)

        # Clear messages for an empty article, a too-long one, a dead network, a server fault.
        page.click("#analyse")
        expect(page.locator("#error")).to_contain_text("The article is empty")
        page.fill("#article", "Word. " * 400)
        page.click("#analyse")
        expect(page.locator("#error")).to_contain_text("too long")
        expect(page.locator("#error")).to_contain_text("the limit is 2000")
        page.fill("#article", ARTICLE)
        page.route("**/v1/analyze", lambda route: route.abort())
        page.click("#analyse")
        expect(page.locator("#error")).to_contain_text("Could not reach the server")
        page.unroute("**/v1/analyze")
        body = {"error": {"status": 500, "code": "internal", "message": "boom"}}
        page.route("**/v1/analyze", lambda route: route.fulfill(status=500, json=body))
        page.click("#analyse")
        expect(page.locator("#error")).to_contain_text("server had a problem (HTTP 500)")
        page.unroute("**/v1/analyze")

        # A .txt file fills the box.
        page.set_input_files(
            "#file", {"name": "a.txt", "mimeType": "text/plain", "buffer": ARTICLE.encode()}
        )
        expect(page.locator("#article")).to_have_value(ARTICLE)

        # Analyse: each sentence carries exactly the labels its scores earn.
        page.click("#analyse")
        expect(page.locator("#error")).to_be_hidden()
        sentences = page.locator("#doc .sentence")
        expect(sentences).to_have_count(len(truth))
        assert page.locator("#doc b").count() == 0, "markup in the article stays text"

        def shown() -> list[list[str]]:
            return [s.split() for s in sentences.evaluate_all("s => s.map(x => x.dataset.labels)")]

        assert sentences.all_text_contents() == [s["text"] for s in truth]
        assert shown() == [expected_labels(s, thresholds) for s in truth]
        for i, s in enumerate(truth):
            chips = page.locator(f"#chips-{i} .chip").all_text_contents()
            labels = expected_labels(s, thresholds)
            assert chips == [f"{lb.replace('_', ' ')} {s['scores'][lb]:.2f}" for lb in labels]
        analysed = len(analyses)

        # Sliders re-colour without a request: at 0 every sentence has the label, at 1 none.
        slider = page.locator(f'input[type="range"][data-label="{first}"]')
        slider.focus()
        page.keyboard.press("End")
        assert all(first not in labels for labels in shown())
        page.keyboard.press("Home")
        assert all(first in labels for labels in shown())
        expect(page.locator("#count-0")).to_have_text(f"{len(truth)} of {len(truth)}")
        every = {**thresholds, first: 0.0}
        assert shown() == [expected_labels(s, every) for s in truth]
        # The filter hides a label's highlights without touching its slider.
        page.locator(f'input[type="checkbox"][data-label="{first}"]').uncheck()
        assert all(first not in labels for labels in shown())
        page.locator(f'input[type="checkbox"][data-label="{first}"]').check()
        assert len(analyses) == analysed, "moving a slider must not call the API"

        # Keyboard: Tab from the last control lands on the first highlighted sentence,
        # whose evidence words are then underlined; they are not underlined otherwise.
        page.focus("#reset")
        page.keyboard.press("Tab")
        focused = page.locator("#doc .sentence:focus")
        expect(focused).to_have_attribute("data-index", "0")
        wanted = evidence_words(server, truth[0], expected_labels(truth[0], every))
        assert wanted, "at threshold 0 the tiny model always has some evidence"
        words = sentences.first.locator(".evidence")
        expect(words).to_have_count(len(wanted))
        assert words.all_text_contents() == wanted
        assert "underline" in decoration(words.first)
        expect(page.locator("#focus-note")).to_contain_text("Sentence 1:")
        page.screenshot(path=tmp_path / "page.png", full_page=True)

        page.focus("#reset")
        page.mouse.move(0, 0)
        assert "underline" not in decoration(words.first)
        last = sentences.nth(len(truth) - 1)
        last.hover()
        expect(last.locator(".evidence").first).to_be_visible()
        assert "underline" in decoration(last.locator(".evidence").first)
        browser.close()

    assert (tmp_path / "page.png").stat().st_size > 10_000
    assert not errors, errors


def decoration(locator) -> str:
    return locator.evaluate("e => getComputedStyle(e).textDecorationLine")


def evidence_words(base: str, sentence: dict, labels: list[str]) -> list[str]:
    """The words the page should underline, asked of the API the way the page asks."""
    zero = dict.fromkeys(sentence["scores"], 0.0)
    body = {"sentences": [sentence["text"]], "thresholds": zero, "explain": True}
    evidence = api(base, "/v1/classify", body)["results"][0]["evidence"]
    items = sorted(
        (item for lb in labels for item in evidence.get(lb, [])), key=lambda x: x["start"]
    )
    words, at = [], 0
    for item in items:
        if item["start"] >= at:
            words.append(item["text"])
            at = item["end"]
    return words
