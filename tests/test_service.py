"""The HTTP API: every endpoint, every bad input, exact statuses and bodies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.engine import Engine, Limits
from service.model_dir import ModelDirError
from service.settings import Settings

LABELS = ["threat", "denial", "hedge", "counter_accusation"]


def post(client: TestClient, path: str, body: object) -> tuple[int, dict]:
    response = client.post(path, json=body)
    return response.status_code, response.json()


def error(status: int, code: str, message: str) -> dict:
    return {"error": {"status": status, "code": code, "message": message}}


def test_classify_schema(client):
    status, body = post(client, "/v1/classify", {"sentences": ["The ministry denied it.", "Hi."]})
    assert status == 200
    assert body["model"] == {"name": "rhetoric-model", "version": "0.1.0"}
    assert [r["text"] for r in body["results"]] == ["The ministry denied it.", "Hi."]
    for result in body["results"]:
        assert list(result["scores"]) == LABELS
        assert result["truncated"] is False
        assert set(result["labels"]) <= set(LABELS)


def test_threshold_override_decides_labels(client):
    _, low = post(client, "/v1/classify", {"sentences": ["Rain."], "thresholds": {"hedge": 0.0}})
    _, high = post(client, "/v1/classify", {"sentences": ["Rain."], "thresholds": {"hedge": 1.0}})
    assert "hedge" in low["results"][0]["labels"]
    assert "hedge" not in high["results"][0]["labels"]


def test_scores_do_not_depend_on_batch_mates(client):
    target = "The company insists it had nothing to do with the leak."
    _, alone = post(client, "/v1/classify", {"sentences": [target]})
    others = ["Short.", "A much longer sentence about the weather " * 12, "Mid-length line here."]
    _, mixed = post(client, "/v1/classify", {"sentences": [others[0], target, *others[1:]]})
    a = np.array(list(alone["results"][0]["scores"].values()))
    b = np.array(list(mixed["results"][1]["scores"].values()))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_engine_batch_of_100_and_concurrent_clients(tiny_model):
    engine = Engine(str(tiny_model), sessions=2, limits=Limits(max_sentences=200))
    target = "Those responsible will face consequences, the minister warned."
    alone = engine.classify([target])[0]["scores"]
    batch = [f"Filler sentence number {i} " + "word " * (i % 40) for i in range(99)] + [target]
    in_batch = engine.classify(batch)[-1]["scores"]
    seen = []

    def hammer():
        for _ in range(5):
            engine.classify(batch[:30])
            seen.append(engine.classify([target])[0]["scores"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for scores in [in_batch, *seen]:
        np.testing.assert_allclose(list(scores.values()), list(alone.values()), atol=1e-5)


def test_analyze_offsets_and_quotes(client):
    text = (
        "Talks stall\nBRUSSELS, Jan. 5 — “We will respond,” the minister said. "
        "Mr. Lee, 54, denied it.\n\nShares fell 2.4%."
    )
    status, body = post(client, "/v1/analyze", {"text": text, "id": "a-1"})
    assert status == 200 and body["id"] == "a-1"
    spans = body["sentences"]
    assert [s["text"] for s in spans] == [
        "Talks stall",
        "BRUSSELS, Jan. 5 — “We will respond,” the minister said.",
        "Mr. Lee, 54, denied it.",
        "Shares fell 2.4%.",
    ]
    for s in spans:
        assert text[s["start"] : s["end"]] == s["text"]
    assert [s["quoted"] for s in spans] == [False, True, False, False]
    assert body["summary"]["sentences"] == 4
    assert set(body["summary"]["counts"]) == set(LABELS)


def test_explain_offsets_slice_the_text(client):
    text = "Officials may delay the vote. The company denied the report."
    _, body = post(
        client,
        "/v1/analyze",
        {"text": text, "explain": True, "thresholds": {lb: 0.0 for lb in LABELS}},
    )
    items = [i for s in body["sentences"] for v in s["evidence"].values() for i in v]
    assert items, "every label fires at threshold 0, so evidence must be present"
    for item in items:
        assert text[item["start"] : item["end"]] == item["text"]


def test_model_health_ready_metrics(client):
    model = client.get("/v1/model").json()
    assert [lb["name"] for lb in model["labels"]] == LABELS
    assert model["max_length"] == 128 and "validation" in model["metrics"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    post(client, "/v1/classify", {"sentences": ["One.", "Two."]})
    text = client.get("/metrics").text
    assert 'rhetoric_requests_total{route="/v1/classify",status="200"}' in text
    assert "rhetoric_sentences_total" in text and "rhetoric_batch_sentences_bucket" in text


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({}, 422, "invalid_input", "sentences: Field required"),
        ({"sentences": "one"}, 422, "invalid_input", "sentences: Input should be a valid list"),
        ({"sentences": []}, 422, "invalid_input", "sentences must hold at least one sentence"),
        (
            {"sentences": ["ok", "  "]},
            422,
            "invalid_input",
            "sentences[1] is empty or whitespace only",
        ),
        (
            {"sentences": ["x"] * 9},
            422,
            "invalid_input",
            "at most 8 sentences per request, found 9",
        ),
        (
            {"sentences": ["x" * 5001]},
            422,
            "invalid_input",
            "sentences[0] has 5001 characters; the limit is 5000",
        ),
        (
            {"sentences": ["x"], "thresholds": {"sarcasm": 0.5}},
            422,
            "invalid_input",
            "unknown label(s) in thresholds: ['sarcasm']; labels are "
            "['threat', 'denial', 'hedge', 'counter_accusation']",
        ),
        (
            {"sentences": ["x"], "thresholds": {"hedge": 1.5}},
            422,
            "invalid_input",
            "threshold for 'hedge' must be between 0 and 1, found 1.5",
        ),
        (
            {"sentences": ["x"], "explain": "maybe"},
            422,
            "invalid_input",
            "explain: Input should be a valid boolean",
        ),
    ],
)
def test_classify_bad_input(client, body, status, code, message):
    assert post(client, "/v1/classify", body) == (status, error(status, code, message))


def test_transport_errors(client):
    r = client.post(
        "/v1/classify", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()) == (400, error(400, "invalid_json", "body is not valid JSON"))
    r = client.post("/v1/classify", content=b"sentences=x", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert (
        r.json()["error"]["message"] == "expected content-type application/json, found text/plain"
    )
    r = client.post(
        "/v1/classify", content=b"x" * 20_001, headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "too_large")
    r = client.post("/v1/analyze", json={"text": "word " * 1001})
    assert r.status_code == 413
    assert r.json()["error"]["message"] == "text has 5005 characters; the limit is 5000"
    assert client.get("/v1/nothing").status_code == 404
    assert client.get("/v1/classify").json()["error"]["code"] == "method_not_allowed"


def test_odd_text_classifies(client):
    sentences = [
        "Null\x00byte here.",
        "Lone \ud800 surrogate.",
        "Emoji 🚀🔥 test.",
        "مرحبا بالعالم، هذا اختبار.",
        "word " * 400,
    ]
    raw = json.dumps({"sentences": sentences}).encode()  # keeps the lone surrogate escaped
    r = client.post("/v1/classify", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results[1]["text"] == "Lone \ufffd surrogate."
    assert results[0]["text"] == "Null byte here."
    assert [x["truncated"] for x in results] == [False, False, False, False, True]


def test_api_keys(tiny_model):
    secured = TestClient(create_app(Settings(model=tiny_model, workers=1, api_keys=["s3cret"])))
    r = secured.post("/v1/classify", json={"sentences": ["x"]})
    assert (r.status_code, r.json()) == (
        401,
        error(401, "unauthorized", "missing or invalid bearer token"),
    )
    ok = secured.post(
        "/v1/classify", json={"sentences": ["x"]}, headers={"authorization": "Bearer s3cret"}
    )
    assert ok.status_code == 200
    assert secured.get("/healthz").status_code == 200


def test_overload_is_429_with_retry_after(tiny_model):
    busy = TestClient(create_app(Settings(model=tiny_model, workers=1, max_pending=3)))
    r = busy.post("/v1/classify", json={"sentences": ["a", "b", "c", "d"]})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    assert busy.post("/v1/classify", json={"sentences": ["a", "b", "c"]}).status_code == 200


@pytest.mark.parametrize(
    "damage",
    ["truncate_graph", "labels_disagree", "missing_tokenizer", "hash_mismatch", "bad_json"],
)
def test_corrupt_model_dir_fails_start_up(tiny_model, tmp_path, damage):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken, ignore=shutil.ignore_patterns("checkpoint"))
    manifest = json.loads((broken / "rhetoric.json").read_text())
    expected = {
        "truncate_graph": "sha256 does not match",
        "labels_disagree": "graph outputs 4",
        "missing_tokenizer": "missing tokenizer.json",
        "hash_mismatch": "sha256",
        "bad_json": "not valid JSON",
    }[damage]
    if damage == "truncate_graph":
        data = (broken / "model.onnx").read_bytes()
        (broken / "model.onnx").write_bytes(data[: len(data) // 2])
    elif damage == "labels_disagree":
        manifest["labels"].append("sarcasm")
        manifest["thresholds"]["sarcasm"] = 0.5
        (broken / "rhetoric.json").write_text(json.dumps(manifest))
    elif damage == "missing_tokenizer":
        (broken / "tokenizer.json").unlink()
    elif damage == "hash_mismatch":
        (broken / "tokenizer.json").write_text((broken / "tokenizer.json").read_text() + " ")
    else:
        (broken / "rhetoric.json").write_text("{")
    with pytest.raises(ModelDirError, match=expected):
        create_app(Settings(model=broken, workers=1))


def test_serving_never_imports_torch_or_transformers(tiny_model):
    code = (
        "import sys; from fastapi.testclient import TestClient;"
        "from service.app import create_app; from service.settings import Settings;"
        f"c = TestClient(create_app(Settings(model={str(tiny_model)!r})));"
        "assert c.post('/v1/analyze', json={'text': 'We deny it. Maybe.'}).status_code == 200;"
        "bad = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
