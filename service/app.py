"""HTTP layer: parse the request, call the engine, shape the answer.

One error shape for everything: {"error": {"status", "code", "message"}}.
| status | code | when |
|---|---|---|
| 400 | invalid_json | the body is not JSON |
| 401 | unauthorized | API keys are set and the bearer token is missing or wrong |
| 404/405 | not_found / method_not_allowed | no such route or method |
| 413 | too_large | body over max_body_bytes, or a document over max_document_chars |
| 415 | unsupported_media_type | POST without content-type application/json |
| 422 | invalid_input | a field is missing, mistyped or out of range |
| 429 | overloaded | more sentences pending than max_pending (with Retry-After) |
"""

from __future__ import annotations

import hmac
import logging
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, Field, StrictBool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.engine import (
    VISIBLE,
    Engine,
    InputError,
    Limits,
    Overloaded,
    TooLarge,
    load_engine,
)
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("rhetoric")
STATIC = Path(__file__).parent / "static"  # the highlighter page: no build step
EXAMPLE = "The ministry denied the report and accused the newspaper of spreading lies."


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"status": status, "code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def json_number(value: Any) -> Any:
    """Pydantic's lax mode would turn "0.5" or true into a float; the document says number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    return value


Threshold = Annotated[float, BeforeValidator(json_number)]


class ClassifyRequest(BaseModel):
    sentences: list[str] = Field(examples=[[EXAMPLE, "Shares rose 3% on Monday."]])
    thresholds: dict[str, Threshold] | None = Field(None, examples=[{"hedge": 0.6}])
    explain: StrictBool = False


class AnalyzeRequest(BaseModel):
    text: str = Field(examples=[f"Minister resigns\n{EXAMPLE} Officials may delay the vote."])
    id: str | None = None
    thresholds: dict[str, Threshold] | None = None
    explain: StrictBool = False


class ErrorDetail(BaseModel):
    status: int
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


def state_limits(schema: dict[str, Any], labels: tuple[str, ...], limits: Limits) -> None:
    """Write the limits the engine enforces into the OpenAPI document.

    Validation stays in the engine (its messages name the field); the document only says
    what will be accepted, so generated clients and fuzzers know it too.
    """
    text = {"type": "string", "pattern": VISIBLE}
    thresholds = {
        "type": "object",
        "propertyNames": {"enum": list(labels)},
        "additionalProperties": {"type": "number", "minimum": 0, "maximum": 1},
    }
    bodies = schema["components"]["schemas"]
    classify = bodies["ClassifyRequest"]["properties"]
    analyze = bodies["AnalyzeRequest"]["properties"]
    classify["sentences"].update(
        minItems=1,
        maxItems=limits.max_sentences,
        items={**text, "maxLength": limits.max_sentence_chars},
    )
    analyze["text"].update(text, maxLength=limits.max_document_chars)
    for body in (classify, analyze):
        body["thresholds"]["anyOf"][0] = thresholds


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over the limit before reading them whole."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            response = error_response(413, "too_large", f"body over {self.max_bytes} bytes")
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise ApiError(413, "too_large", f"body over {self.max_bytes} bytes")
            return message

        await self.app(scope, counted, send)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    limits = Limits(
        settings.max_sentences,
        settings.max_sentence_chars,
        settings.max_document_chars,
        settings.max_pending,
    )
    engine = engine or load_engine(str(settings.model), settings.workers, limits)
    metrics = Metrics(engine.labels)
    app = FastAPI(
        title="rhetoric",
        version="0.1.0",
        description="Labels news sentences: " + ", ".join(engine.labels) + ".",
    )
    app.state.engine, app.state.metrics = engine, metrics

    # Dependencies are async: a sync one costs a worker-thread hop on every request.
    async def authorised(request: Request) -> None:
        if not settings.api_keys:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not any(hmac.compare_digest(token, key) for key in settings.api_keys):
            raise ApiError(401, "unauthorized", "missing or invalid bearer token")

    async def json_body(request: Request) -> None:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(
                415,
                "unsupported_media_type",
                f"expected content-type application/json, found {kind or 'none'}",
            )

    auth, json_post = [Depends(authorised)], [Depends(authorised), Depends(json_body)]
    model_ref = {"name": engine.info.name, "version": engine.info.version}

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return error_response(err.status, err.code, err.message, err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        if first.get("type") == "json_invalid":
            return error_response(400, "invalid_json", "body is not valid JSON")
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        return error_response(422, "invalid_input", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, err: StarletteHTTPException) -> JSONResponse:
        if err.status_code == 400:  # Starlette's "error parsing the body": not UTF-8
            return error_response(400, "invalid_json", "body is not valid JSON (UTF-8)")
        codes = {404: "not_found", 405: "method_not_allowed"}
        return error_response(
            err.status_code,
            codes.get(err.status_code, "http_error"),
            str(err.detail),
            err.headers,  # a 405 carries Allow
        )

    def run(work: Any) -> Any:
        try:
            return work()
        except Overloaded as err:
            raise ApiError(429, "overloaded", str(err), {"Retry-After": "1"}) from err
        except TooLarge as err:
            raise ApiError(413, "too_large", str(err)) from err
        except InputError as err:
            raise ApiError(422, "invalid_input", str(err)) from err

    post_errors = documented(400, 401, 413, 415, 422, 429)

    @app.post("/v1/classify", tags=["classify"], dependencies=json_post, responses=post_errors)
    def classify(body: ClassifyRequest) -> dict[str, Any]:
        """Score each sentence; `labels` are those at or above their threshold."""
        results = run(lambda: engine.classify(body.sentences, body.thresholds, body.explain))
        metrics.scored(results)
        return {"model": model_ref, "results": results}

    @app.post("/v1/analyze", tags=["classify"], dependencies=json_post, responses=post_errors)
    def analyze(body: AnalyzeRequest) -> dict[str, Any]:
        """Split a document into sentences (with offsets) and score each one."""
        result = run(lambda: engine.analyze(body.text, body.thresholds, body.explain))
        metrics.scored(result["sentences"])
        return {"model": model_ref, "id": body.id, **result}

    @app.get("/v1/model", tags=["model"], dependencies=auth, responses=documented(401))
    def model() -> dict[str, Any]:
        info = engine.info
        return {
            **model_ref,
            "labels": [
                {
                    "name": lb,
                    "definition": info.definitions.get(lb, ""),
                    "threshold": info.thresholds[lb],
                }
                for lb in info.labels
            ],
            "thresholds": info.thresholds,
            "max_length": info.max_length,
            "base_model": info.base_model,
            "metrics": info.metrics,
        }

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses=documented(503))
    def readyz() -> Response:
        if not engine.ready:
            return error_response(503, "not_ready", "model is warming up")
        return JSONResponse({"status": "ready", "model": model_ref})

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The article highlighter; public, like its assets: the API calls carry the key."""
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get(
        "/metrics",
        tags=["ops"],
        dependencies=auth,
        response_class=PlainTextResponse,
        responses=documented(401),
    )
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            state_limits(schema, engine.labels, limits)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(metrics.middleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def run(
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """`rhetoric serve`: flags override RHETORIC_* variables."""
    import uvicorn

    overrides = {
        k: v
        for k, v in {"model": model, "host": host, "port": port, "workers": workers}.items()
        if v is not None
    }
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    started = time.time()
    app = create_app(settings)
    log.info(
        "loaded %s %s from %s in %.1fs",
        app.state.engine.info.name,
        app.state.engine.info.version,
        settings.model,
        time.time() - started,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=False)
