"""Fast reliability checks (the full runs are `make reliability`, bench/reliability.py).

- a schemathesis fuzz of every operation through the ASGI app: never a 5xx, and every
  documented response matches its schema;
- a burst past the pending bound: 429 with Retry-After, then service again at once;
- model faults: `rhetoric serve` refuses a damaged model directory;
- one regression test per finding of the full runs.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.engine import Engine, Limits
from service.model_dir import ModelDirError, sha256_file
from service.settings import Settings

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

LABELS = ["threat", "denial", "hedge", "counter_accusation"]


def test_fuzz_never_5xx_and_documented_responses_match(app):
    """Every operation of the OpenAPI document, generated cases, through the ASGI app."""
    api = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 6
    cases = [(op, GenerationMode.POSITIVE) for op in operations] + [
        (op, GenerationMode.NEGATIVE) for op in operations if op.method.lower() == "post"
    ]
    for op, mode in cases:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            response = case.call()
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )

        check()


def test_burst_past_the_bound_gets_429_then_recovers(tiny_model):
    client = TestClient(create_app(Settings(model=tiny_model, workers=2, max_pending=8)))
    body = {"sentences": [f"Sentence number {i} about the vote." for i in range(8)]}
    statuses: list[int] = []
    retry_after: list[str | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(6):
            response = client.post("/v1/classify", json=body)
            with lock:
                statuses.append(response.status_code)
                retry_after.append(response.headers.get("retry-after"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {200, 429}
    assert 429 in statuses and 200 in statuses
    assert all(r == "1" for s, r in zip(statuses, retry_after, strict=True) if s == 429)
    assert client.post("/v1/classify", json={"sentences": ["Calm again."]}).status_code == 200


def damaged_copy(tiny_model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder, ignore=shutil.ignore_patterns("checkpoint", "*fp32*"))
    return folder


def rehash(folder: Path) -> None:
    manifest = json.loads((folder / "rhetoric.json").read_text())
    manifest["files"] = {name: sha256_file(folder / name) for name in manifest["files"]}
    (folder / "rhetoric.json").write_text(json.dumps(manifest))


def test_truncated_graph_with_a_matching_hash_is_refused(tiny_model, tmp_path):
    folder = damaged_copy(tiny_model, tmp_path)
    data = (folder / "model.onnx").read_bytes()
    (folder / "model.onnx").write_bytes(data[: len(data) // 2])
    rehash(folder)
    with pytest.raises(ModelDirError, match="ONNX Runtime cannot load it"):
        Engine(str(folder), 1, Limits())


def test_labels_that_disagree_with_the_graph_are_refused(tiny_model, tmp_path):
    folder = damaged_copy(tiny_model, tmp_path)
    manifest = json.loads((folder / "rhetoric.json").read_text())
    manifest["labels"] = LABELS + ["whataboutism"]
    manifest["thresholds"]["whataboutism"] = 0.5
    (folder / "rhetoric.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelDirError, match="graph outputs 4 scores"):
        Engine(str(folder), 1, Limits())


def small_foreign_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = "the a minister denied report said would not vote".split()
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(path))


def test_foreign_tokenizer_is_refused(tiny_model, tmp_path):
    folder = damaged_copy(tiny_model, tmp_path)
    small_foreign_tokenizer(folder / "tokenizer.json")
    rehash(folder)
    with pytest.raises(ModelDirError, match="tokenizer"):
        Engine(str(folder), 1, Limits())


# --- findings of `make reliability` (schemathesis against a real server) ---------------------


def operation(app, path: str, method: str) -> dict:
    return app.openapi()["paths"][path][method]


def test_metrics_is_documented_as_text(app, client):
    assert client.get("/metrics").headers["content-type"].startswith("text/plain")
    assert "text/plain" in operation(app, "/metrics", "get")["responses"]["200"]["content"]


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/analyze"])
def test_error_statuses_are_documented(app, path):
    documented = set(operation(app, path, "post")["responses"])
    assert {"400", "413", "415", "422", "429"} <= documented


def test_explain_must_be_a_boolean(client):
    response = client.post("/v1/classify", json={"sentences": ["Rain."], "explain": "yes"})
    assert response.status_code == 422


@pytest.mark.parametrize("value", ["0.5", True])
@pytest.mark.parametrize("body", [{"sentences": ["Rain."]}, {"text": "Rain."}])
def test_thresholds_must_be_numbers(client, body, value):
    """Fuzzing found "0.5" and true accepted as thresholds (ST201): lax float parsing."""
    path = "/v1/classify" if "sentences" in body else "/v1/analyze"
    response = client.post(path, json={**body, "thresholds": {"hedge": value}})
    assert response.status_code == 422
    assert "thresholds" in response.json()["error"]["message"]
    assert client.post(path, json={**body, "thresholds": {"hedge": 1}}).status_code == 200


def test_schema_states_what_the_service_rejects(app):
    body = app.openapi()["components"]["schemas"]["ClassifyRequest"]["properties"]
    assert body["sentences"].get("minItems") == 1
    assert body["thresholds"]["anyOf"][0]["propertyNames"]["enum"] == LABELS


@pytest.mark.parametrize(
    "text", ["\x1f", "\x1c \x1d", "\x85", "\ufeff", " \t\n", "\u2003", "x\x1f", "\u200b", "a"]
)
def test_documented_pattern_is_what_the_engine_accepts(app, client, text):
    """Fuzzing found "\\x1f" valid by the documented \\S but blank to str.strip() (ST202)."""
    schemas = app.openapi()["components"]["schemas"]
    pattern = schemas["ClassifyRequest"]["properties"]["sentences"]["items"]["pattern"]
    assert schemas["AnalyzeRequest"]["properties"]["text"]["pattern"] == pattern
    valid = re.search(pattern, text) is not None
    # schemathesis checks with jsonschema_rs, whose \\s is not Python's
    assert (
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern}).is_valid(text) == valid
    )
    for path, body in (("/v1/classify", {"sentences": [text]}), ("/v1/analyze", {"text": text})):
        response = client.post(path, json=body)
        assert response.status_code == (200 if valid else 422), (path, response.text)


def test_405_names_the_allowed_methods(client):
    response = client.request("TRACE", "/healthz")
    assert response.status_code == 405
    assert response.headers.get("allow") == "GET"


def test_non_utf8_body_is_invalid_json(client):
    response = client.post(
        "/v1/classify",
        content='{"sentences": ["Caf\u00e9 owners denied it."]}'.encode("latin-1"),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
