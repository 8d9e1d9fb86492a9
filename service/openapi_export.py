"""Export the OpenAPI document; the app is built with throwaway keys and never started."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from service.security.tokens import generate_signing_key_pem
from service.settings import Settings, SmtpConfig


def _schema_only_settings(schemas_dir: Path) -> Settings:
    return Settings(
        database_url="postgresql://schema-export.invalid/consent",
        smtp=SmtpConfig(host="localhost", port=25),
        mail_from="consent@example.invalid",
        public_url="https://consent.example.invalid",
        signing_key_pem=generate_signing_key_pem(),
        data_key=os.urandom(32),
        schemas_dir=schemas_dir,
    )


def openapi_document(schemas_dir: Path) -> dict[str, Any]:
    from service.app import create_app

    app = create_app(_schema_only_settings(schemas_dir))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


def render_openapi(schemas_dir: Path) -> str:
    return (
        json.dumps(openapi_document(schemas_dir), indent=2, sort_keys=True, ensure_ascii=False)
        + "\n"
    )


def write_openapi(path: Path, schemas_dir: Path) -> Path:
    # Rendered before any file is opened, so a failing export leaves no stray file beside it.
    text = render_openapi(schemas_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".openapi-", delete=False, encoding="utf-8"
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).chmod(0o644)
    Path(tmp.name).replace(path)
    return path
