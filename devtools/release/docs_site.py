"""mkdocs hooks (``mkdocs.yml``): the pages made from the code rather than written by hand.

- ``api/<service>.md``: each service's published OpenAPI document, rendered (the same
  ``DOCUMENT`` its ``/api/<service>/openapi.json`` route serves): every operation, its
  parameters, its answers and the error codes each can carry.
- ``configuration.md``: every setting, from its one declaration (``shared/config.py``).

``make docs`` serves the site; ``tests/test_docs.py`` builds it with ``--strict`` (a broken
link, a missing page or anchor fails the suite).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("quote", "backtest", "alerts")


def _document(service: str) -> dict:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"{service}.chalicelib.openapi").DOCUMENT


def _codes(response: dict) -> list[str]:
    try:
        schema = response["content"]["application/json"]["schema"]
        return list(schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"])
    except (KeyError, IndexError, TypeError):
        return []


def _cell(text) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")


def render(service: str) -> str:
    """One service's OpenAPI document as a page."""
    doc = _document(service)
    info = doc["info"]
    out = [
        f"# {info['title']}",
        "",
        f"*Rendered from the OpenAPI {doc['openapi']} document the service serves at "
        f"`/api/{service}/openapi.json` (version {info.get('version', '')}).*",
        "",
        info.get("description", ""),
        "",
    ]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            out += [f"## `{method.upper()} {path}`", "", operation.get("summary", ""), ""]
            if operation.get("description"):
                out += [operation["description"], ""]
            if operation.get("security"):
                out += ["Needs a bearer token (a Cognito access token).", ""]
            parameters = operation.get("parameters", [])
            if parameters:
                out += ["| parameter | in | required | schema | what |", "|---|---|---|---|---|"]
                for p in parameters:
                    schema = json.dumps(p.get("schema", {}), separators=(", ", ": "))
                    out.append(
                        f"| `{p['name']}` | {p['in']} | {'yes' if p.get('required') else 'no'} | "
                        f"`{_cell(schema)}` | {_cell(p.get('description'))} |"
                    )
                out.append("")
            out += ["| status | what | error codes |", "|---|---|---|"]
            for status, response in operation.get("responses", {}).items():
                codes = ", ".join(f"`{c}`" for c in _codes(response))
                out.append(f"| {status} | {_cell(response.get('description'))} | {codes} |")
            out.append("")
    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += [f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""]
    return "\n".join(out)


def on_files(files, config):
    """Add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    for service in SERVICES:
        files.append(File.generated(config, f"api/{service}.md", content=render(service)))
    from shared.config import settings_page

    files.append(File.generated(config, "configuration.md", content=settings_page()))
    return files
