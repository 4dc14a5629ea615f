"""The API contract: one OpenAPI 3.1 document per service, checked against the code
and fuzzed with schemathesis against each service as it runs locally (chalice local)."""

from __future__ import annotations

import ast
import json
from collections import Counter

import pytest
from openapi_spec_validator import validate

from devtools.release.imports import service_files
from shared.openapi import documented_codes
from shared.quotes import QUOTE_FAILURE_CODES
from tests.apps import load_app
from tests.support import local_client

SERVICES = ["quote", "backtest", "alerts"]
# Error codes a service's code holds but never answers with, and why.
NEVER_ANSWERED = {
    "internal_error": "the 500 for an unexpected exception: the fuzzing below proves it is not answered",
}
NOT_THIS_SERVICE = {
    "backtest": {"too_many_symbols": "parse_symbol_list, in shared/symbols.py, is the quote API's only"},
    "alerts": {
        "too_many_symbols": "parse_symbol_list, in shared/symbols.py, is the quote API's only",
        "invalid_interval": "parse_interval, in shared/bars.py, is the backtest API's only",
        # The check reads quotes through the shared quote path and keeps these as skip reasons.
        **{
            code: "a reason the scheduled check skips a rule, never an HTTP answer"
            for code in QUOTE_FAILURE_CODES
            if code != "unknown_symbol"  # also a rule's symbol without history: a 400
        },
    },
}


def document(service):
    return load_app(service).DOCUMENT


@pytest.mark.parametrize("service", SERVICES)
def test_each_document_is_valid_openapi_31_and_served(service):
    doc = document(service)
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    app = load_app(service)
    with local_client(app, service) as client:
        response = client.http.get(f"/api/{service}/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body) == json.loads(json.dumps(doc))


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_documented_and_every_documented_path_is_a_route(service):
    app = load_app(service).app
    routes = {
        (path, method.lower()) for path, entries in app.routes.items() for method in entries if method != "OPTIONS"
    }
    documented = {(path, method) for path, item in document(service)["paths"].items() for method in item}
    assert routes == documented


@pytest.mark.parametrize("service", SERVICES)
def test_every_operation_documents_the_400_for_an_unknown_parameter(service):
    doc = document(service)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            answer = operation["responses"].get("400")
            assert answer is not None, f"{method.upper()} {path} documents no 400"
            code = answer["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"]["properties"]
            assert "unknown_parameter" in code["code"]["enum"], f"{method.upper()} {path}"
    # The one route schemathesis leaves out, asked directly.
    with local_client(load_app(service), service) as client:
        response = client.http.get(f"/api/{service}/openapi.json?indent=2")
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "unknown_parameter"


def codes_in_code(service: str) -> set[str]:
    """Error codes the code a service runs can raise: the first literal argument of
    bad_request/not_found/unavailable, the second of ApiError."""
    found = set()
    for path in service_files(service):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            index = {"bad_request": 0, "not_found": 0, "unavailable": 0, "ApiError": 1, "aws_unavailable": 1}.get(name)
            if index is not None and len(node.args) > index:
                argument = node.args[index]
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.add(argument.value)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_the_error_codes_documented_are_the_ones_the_code_answers_with(service):
    in_code = codes_in_code(service) - set(NEVER_ANSWERED) - set(NOT_THIS_SERVICE.get(service, {}))
    documented = documented_codes(document(service))
    assert in_code - documented == set(), "answered but not documented"
    assert documented - in_code == set(), "documented but never answered"


def test_the_code_scan_finds_codes_where_they_are_raised():
    """The comparison above could pass on an empty scan: show the scan sees the codes."""
    assert {"invalid_overlay", "cursor_mismatch", "accept_required", "history_unavailable"} <= codes_in_code("backtest")
    assert {"rule_not_found", "invalid_condition", "too_many_rules"} <= codes_in_code("alerts")
    assert "invalid_overlay" not in codes_in_code("quote")


# ---------------------------------------------------------------- fuzzing the running services

POSITIVE_EXAMPLES = 30
NEGATIVE_EXAMPLES = 20


def fuzz(schema, base_url: str, auth: dict, report: Counter, overrides: dict | None = None) -> None:
    """Every operation of ``schema``: generated valid and invalid requests, each answer
    checked for its documented status, content type, headers and schema; invalid
    input must be refused (4xx); no 5xx but a documented 503.

    Valid requests carry ``auth`` (a valid bearer token); invalid ones are sent as
    generated, so a request whose invalid part is its missing or wrong token is
    sent that way and must be refused."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]

    def runner(label: str, mode, strategy, examples: int):
        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case):
            response = case.call_and_validate(base_url=base_url, checks=checks)
            assert response.status_code < 500 or response.status_code == 503, (
                f"{label} answered {response.status_code}: {response.text[:300]}"
            )
            report[(label, mode.value, response.status_code)] += 1

        return run

    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        modes = [(GenerationMode.POSITIVE, POSITIVE_EXAMPLES)]
        raw = operation.definition.raw
        if raw.get("parameters") or raw.get("requestBody"):
            modes.append((GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES))  # nothing to make invalid otherwise
        for mode, examples in modes:
            given_parts = dict((overrides or {}).get(label, {}))
            if mode == GenerationMode.POSITIVE and auth and raw.get("security") != []:
                given_parts["headers"] = {**given_parts.get("headers", {}), **auth}
            strategy = operation.as_strategy(generation_mode=mode, **given_parts)
            runner(label, mode, strategy, examples)()


def print_report(service: str, report: Counter) -> None:
    """Cases per operation, by kind and answer, in the run's summary (conftest.py prints it)."""
    from tests.support import SUMMARY

    by_operation: dict[str, Counter] = {}
    for (label, mode, status), count in report.items():
        by_operation.setdefault(label, Counter())[f"{mode} {status}"] += count
    lines = [f"{service}: {sum(report.values())} cases"]
    for label, counts in sorted(by_operation.items()):
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        lines.append(f"  {label}: {sum(counts.values())} cases ({kinds})")
    SUMMARY.setdefault("contract fuzzing (schemathesis)", []).extend(lines)


@pytest.mark.parametrize("service", SERVICES)
def test_contract_fuzzing_against_chalice_local(stack, service):
    import schemathesis

    base_url = stack.url(service)
    schema = schemathesis.openapi.from_url(f"{base_url}/api/{service}/openapi.json")
    headers = {}
    if service == "alerts":
        headers = {"Authorization": f"Bearer {stack.token(*stack.account('fuzz'))}"}
    report: Counter = Counter()
    if service == "alerts":
        # A rule and a channel of this user's first, so the fuzzing finds ids that exist
        # (and before it can fill the user's channel slots).
        import urllib.request

        def post(path, body):
            request_ = urllib.request.Request(
                f"{base_url}{path}",
                data=json.dumps(body).encode(),
                headers={**headers, "Content-Type": "application/json"},
                method="POST",
            )
            return json.loads(urllib.request.urlopen(request_, timeout=10).read())["id"]

        rule_id = post("/api/alerts/rules", {"symbol": "AAPL", "condition": "close < sma(50)"})
        channel_id = post("/api/alerts/channels", {"type": "email", "address": "fuzz@example.com"})
    fuzz(schema, base_url, headers, report)
    # Again with what the data holds, so the answers are more than 404s.
    if service == "quote":
        fuzz(schema, base_url, headers, report, {"GET /api/quote": {"query": {"symbol": "AAPL"}}})
    elif service == "backtest":
        fuzz(schema, base_url, headers, report, {"GET /api/backtest": {"query": {"symbol": "AAPL"}}})
    else:
        fuzz(
            schema,
            base_url,
            headers,
            report,
            {
                **{
                    f"{method} /api/alerts/rules/{{rule_id}}": {"path_parameters": {"rule_id": rule_id}}
                    for method in ("GET", "PATCH", "DELETE")
                },
                "DELETE /api/alerts/channels/{channel_id}": {"path_parameters": {"channel_id": channel_id}},
            },
        )
        valid = {"symbol": "AAPL", "condition": "close < sma(50)"}
        fuzz(
            schema,
            base_url,
            headers,
            report,
            {"POST /api/alerts/rules": {"body": valid, "media_type": "application/json"}},
        )
        hook = {"type": "webhook", "url": stack.webhooks.url("fuzz")}
        fuzz(
            schema,
            base_url,
            headers,
            report,
            {"POST /api/alerts/channels": {"body": hook, "media_type": "application/json"}},
        )
    print_report(service, report)
    operations = {label for label, _, _ in report}
    documented = {f"{m.upper()} {p}" for p, item in document(service)["paths"].items() for m in item}
    # schemathesis leaves out the operation that served the schema it loaded: the test
    # that fetches and compares the document covers that one.
    documented.discard(f"GET /api/{service}/openapi.json")
    assert operations == documented, "every operation was called"
