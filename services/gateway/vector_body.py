"""Parsing a binary vector upload (``POST /v1/collections/{name}/vectors/binary``): a JSON header line,
then the raw vectors.

The body is ``{"ids": [...], "payloads"?: [...], "skip_existing"?: bool}``, a newline, then
len(ids) x dims little-endian float32 numbers, row-major. It carries what the JSON route's
``vectors_b64`` does without base64 (a third fewer bytes, nothing to decode): the SDK sends this.
The route parses its body by hand, so its OpenAPI request body is declared here too. Imports the
counterpoint base (errors, schemas) and `gateway.errors`; never the routes.
"""

from __future__ import annotations

import json

from fastapi import Request
from pydantic import ValidationError

from counterpoint.errors import InvalidInput
from counterpoint.schemas import VectorUploadHeader
from counterpoint.services.gateway.errors import describe_validation

BINARY_TYPE = "application/octet-stream"

VECTORS_BINARY_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            BINARY_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "a JSON header line {ids, payloads?, skip_existing?}, '\\n', then "
                    "len(ids) x dims little-endian float32 numbers, row-major",
                }
            }
        },
    }
}

HEADER_HELP = (
    'a binary vector upload is a JSON header line ({"ids": [...], "payloads"?: [...], '
    '"skip_existing"?: bool}), a newline, then the little-endian float32 vectors'
)


async def read_binary_vectors(request: Request) -> tuple[VectorUploadHeader, memoryview]:
    """The header of a binary upload and its vectors' bytes (unchecked: the upload checks their size)."""
    body = await request.body()
    end = body.find(b"\n")
    if end < 0:
        raise InvalidInput(f"no header line: {HEADER_HELP}")
    try:
        header = json.loads(body[:end])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(f"the header line is not valid JSON: {HEADER_HELP}") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"the header line must be a JSON object: {HEADER_HELP}")
    try:
        parsed = VectorUploadHeader.model_validate(header)
    except ValidationError as exc:
        raise InvalidInput(describe_validation(list(exc.errors()))) from None
    return parsed, memoryview(body)[end + 1 :]
