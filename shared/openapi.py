"""Pieces every service's OpenAPI 3.1 document is built from.

Each app builds its document in ``chalicelib/openapi.py`` from the constants
its own validation uses (so a limit changed in code changes the contract), and
serves it at ``GET /api/<service>/openapi.json``. The tests check the rest
against the code: every route is documented and every documented path is a
route; every error code the code can answer with is documented, and no other;
and schemathesis fuzzes each running service against its document.
"""

from __future__ import annotations

from typing import Any

from shared.errors import DEPENDENCIES
from shared.symbols import SYMBOL_PATTERN

VERSION = "1.0.0"

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "machine-readable; the tables in the README list them"},
                "message": {"type": "string", "description": "for people"},
                "dependency": {
                    "enum": list(DEPENDENCIES),
                    "description": "on a 503: the kind of dependency that failed (never its address)",
                },
            },
        }
    },
}

SYMBOL = {
    "type": "string",
    "pattern": SYMBOL_PATTERN,
    "description": "a ticker symbol, any case: 1-6 letters or digits, optionally a class suffix (BRK.B)",
    "examples": ["AAPL", "brk.b"],
}

CACHE_CONTROL = {
    "description": "how long the answer may be kept (max-age in seconds; 0 or no-store when it must not be)",
    "required": True,
    "schema": {"type": "string"},
}
RETRY_AFTER = {
    "description": "seconds to wait before asking again",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def error_answer(description: str, codes: list[str], retry_after: bool = False) -> dict:
    """An error answer: ``{"error": {"code", "message", ...}}`` with ``code`` one of ``codes``."""
    schema = {
        "allOf": [
            {"$ref": "#/components/schemas/Error"},
            {"properties": {"error": {"properties": {"code": {"enum": sorted(codes)}}}}},
        ]
    }
    headers = {"Cache-Control": CACHE_CONTROL}
    if retry_after:
        headers["Retry-After"] = RETRY_AFTER
    return {"description": description, "headers": headers, "content": {"application/json": {"schema": schema}}}


def unavailable_answer(description: str, codes: list[str]) -> dict:
    """The one 5xx a service answers with on purpose: a dependency failed, come back later."""
    return error_answer(description, codes, retry_after=True)


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def _refuses_unknown_parameters(paths: dict) -> None:
    """Every route refuses a query parameter it does not take, or one given twice
    (shared.web.query_params)."""
    codes = ["unknown_parameter", "repeated_parameter"]
    for item in paths.values():
        for operation in item.values():
            responses = operation["responses"]
            if "400" not in responses:
                responses["400"] = error_answer("an unknown query parameter, or one given twice", codes)
                continue
            enum = responses["400"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"][
                "properties"
            ]["code"]["enum"]
            enum[:] = sorted({*enum, *codes})


def document(service: str, title: str, description: str, paths: dict, schemas: dict, security: dict | None = None):
    """The service's document; it serves itself at ``/api/<service>/openapi.json``, without auth."""
    paths = {
        **paths,
        f"/api/{service}/openapi.json": {
            "get": {
                "operationId": f"get{service.title()}OpenApi",
                "summary": "this document",
                "responses": {
                    "200": {"description": "the OpenAPI document", "content": json_content({"type": "object"})}
                },
            }
        },
    }
    _refuses_unknown_parameters(paths)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": VERSION, "description": description},
        "servers": [{"url": "/", "description": f"where the {service} service is served (API Gateway stage or local)"}],
        "paths": paths,
        "components": {"schemas": {"Error": ERROR_SCHEMA, **schemas}},
    }
    if security:
        doc["components"]["securitySchemes"] = security
    return doc


def documented_codes(doc: dict) -> set[str]:
    """Every error code a document lists, over all its operations."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            code = node.get("properties", {}).get("error", {}).get("properties", {}).get("code", {})
            if isinstance(code, dict) and "enum" in code:
                found.update(code["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    return found


def query_names(doc: dict, path: str, method: str) -> tuple[str, ...]:
    """The query parameters an operation takes, as its document lists them: the
    route refuses any other (shared.web.query_params), so the two cannot drift."""
    operation = doc["paths"][path][method]
    return tuple(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
