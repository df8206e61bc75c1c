"""Prometheus metrics: requests by route and status, latency, sentences, batch sizes, labels."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self, labels: tuple[str, ...]):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rhetoric_requests_total", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rhetoric_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.sentences = Counter(
            "rhetoric_sentences_total", "sentences scored", registry=self.registry
        )
        self.batch = Histogram(
            "rhetoric_batch_sentences",
            "sentences per request",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.labels = Counter(
            "rhetoric_labels_total", "labels assigned", ["label"], registry=self.registry
        )
        for label in labels:
            self.labels.labels(label)
        self.middleware = self._middleware_class()

    def scored(self, results: list[dict[str, Any]]) -> None:
        self.sentences.inc(len(results))
        self.batch.observe(len(results))
        for result in results:
            for label in result["labels"]:
                self.labels.labels(label).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def _middleware_class(self) -> type:
        metrics = self

        class RecordRequests:
            def __init__(self, app: ASGIApp):
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] != "http":
                    return await self.app(scope, receive, send)
                started = time.perf_counter()
                status = 500

                async def sending(message: Message) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                    await send(message)

                try:
                    await self.app(scope, receive, sending)
                finally:
                    route = scope.get("route")
                    path = getattr(route, "path", "unmatched")
                    metrics.requests.labels(path, str(status)).inc()
                    metrics.latency.labels(path).observe(time.perf_counter() - started)

        return RecordRequests
