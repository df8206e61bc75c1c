"""Service settings: the only reader of RHETORIC_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RHETORIC_", frozen=True, extra="forbid")

    model: Path = Path("models/rhetoric-minilm")  # model directory to serve
    host: str = "127.0.0.1"  # bind address
    port: int = Field(8000, ge=1, le=65535)  # TCP port
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)  # sessions
    max_sentences: int = Field(256, ge=1)  # sentences per /v1/classify request
    max_sentence_chars: int = Field(5000, ge=1)  # characters per sentence
    max_document_chars: int = Field(200_000, ge=1)  # characters per /v1/analyze document
    max_body_bytes: int = Field(1_000_000, ge=1)  # request body size
    max_pending: int = Field(2048, ge=1)  # sentences queued or running before 429
    api_keys: Annotated[list[str], NoDecode] = []  # comma-separated bearer keys; empty = open
    cors_origins: Annotated[list[str], NoDecode] = []  # comma-separated allowed origins

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [x.strip() for x in value.split(",") if x.strip()]
        return value
