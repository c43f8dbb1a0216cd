"""Parsing an ingest request's body: a JSON object or list, raw JSON Lines, or a multipart JSONL upload.

The ingest route parses its body by hand (FastAPI would accept only the JSON form), so its OpenAPI
request body is declared here too. Imports the counterpoint base (errors, jsonl, schemas) and
`gateway.errors`; never the routes.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from counterpoint.errors import InvalidInput
from counterpoint.jsonl import iter_jsonl
from counterpoint.schemas import IngestRequest
from counterpoint.services.gateway.errors import describe_validation

JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "text/plain")

INGEST_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/IngestRequest"}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one Document per line"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
        },
    }
}


def parse_jsonl(raw: bytes) -> list[dict[str, Any]]:
    """The documents of a JSON Lines upload, naming the first bad line; an empty upload is an error."""
    docs = list(iter_jsonl(raw))
    if not docs:
        raise InvalidInput("the upload contains no documents")
    return docs


async def read_ingest_body(request: Request) -> IngestRequest:
    """Accept a JSON body, a raw JSONL body, or a multipart upload with a ``file`` field."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    skip = request.query_params.get("skip_existing", "false").lower() in ("1", "true", "yes")
    try:
        if ctype == "multipart/form-data":
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise InvalidInput("multipart upload needs a 'file' field holding JSONL")
            return IngestRequest(documents=parse_jsonl(await upload.read()), skip_existing=skip)
        raw = await request.body()
        if ctype in JSONL_TYPES:
            return IngestRequest(documents=parse_jsonl(raw), skip_existing=skip)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput("body is not valid JSON (send JSONL as application/x-ndjson)") from None
        if isinstance(body, list):
            body = {"documents": body}
        if skip and isinstance(body, dict):
            body.setdefault("skip_existing", True)
        return IngestRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidInput(describe_validation(list(exc.errors()))) from None
