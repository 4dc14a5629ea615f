"""The one place that turns service results and ``ApiError`` into Chalice responses,
and ``ServiceApp``: a Chalice app that registers, once, what every route shares."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from chalice import Chalice, CORSConfig, Response
from chalice.app import Request

from shared import observability
from shared.errors import ApiError, bad_request, error_body, snake_code
from shared.observability import observe as observe_app

log = logging.getLogger(__name__)

# Every route's CORS: the dashboard may be served from another origin (locally
# it is), reads these headers, and need not repeat a preflight for ten minutes.
CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["If-None-Match"],
    expose_headers=[
        "ETag",
        "Retry-After",
        "X-Next-Cursor",
        "X-Source",
        "X-Adjustment",
        "X-Corporate-Actions",
        "X-Corporate-Actions-Omitted",
    ],
    max_age=600,
)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})


def error_response(error: ApiError) -> Response:
    headers = {"Cache-Control": "no-store"}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return json_response(error.to_body(), error.status, headers)


# A domain error's answer: what the HTTP layer says when the service's code raises it.
Answers = Mapping[type[Exception], Callable[[Any], ApiError]]


def api_view(view, answers: Answers | None = None):
    """Map ``ApiError`` to its JSON answer, a domain error to the ``ApiError`` that
    ``answers`` gives for its type, and anything unexpected to a 500 in the same
    shape, logged here with its stack, never shown to the caller."""
    table: Answers = answers or {}
    mapped = tuple(table)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            try:
                return view(*args, **kwargs)
            except mapped as domain:
                answer = next(table[kind] for kind in type(domain).__mro__ if kind in table)
                raise answer(domain) from None
        except ApiError as error:
            observability.note(error=error.code)
            return error_response(error)
        except Exception:
            log.exception("unhandled error in %s", view.__name__)
            observability.note(error="internal_error")
            return error_response(ApiError(500, "internal_error", "an internal error occurred"))

    return wrapper


def one_error_shape(app: Chalice) -> None:
    """Register, once, that every error answer has our shape: Chalice's own (a 415 for a
    body without ``Content-Type``, a 405, a body that is not JSON) come as
    ``{"Code", "Message"}`` and are rewritten to ``{"error": {"code", "message"}}``."""

    @app.middleware("http")
    def rewrite_framework_errors(event, get_response):
        response = get_response(event)
        body = response.body
        if response.status_code >= 400 and isinstance(body, dict) and "Code" in body and "error" not in body:
            response.body = error_body(snake_code(str(body["Code"])), body.get("Message"))
            response.headers = {**(response.headers or {}), "Content-Type": "application/json"}
        return response


def request_of(app: Chalice) -> Request:
    """The request a route is answering (Chalice's ``current_request``, None only outside one)."""
    request = app.current_request
    assert request is not None, "no request outside a route"
    return request


def query_params(app: Chalice, allowed: tuple[str, ...]) -> Mapping[str, str]:
    """The request's query parameters, refusing any the route does not take: a
    misspelt one (``interal=5d``) would otherwise be ignored without a word and
    answer something the caller did not ask for."""
    params: Mapping[str, str] = request_of(app).query_params or {}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise bad_request(
            "unknown_parameter",
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}; this route takes {', '.join(allowed) or 'none'}",
        )
    # A parameter given twice (symbol=AAPL&symbol=MSFT) would answer one of them silently.
    getlist = getattr(params, "getlist", None)
    repeated = sorted(name for name in params if getlist and len(getlist(name)) > 1)
    if repeated:
        raise bad_request(
            "repeated_parameter",
            f"query parameter(s) {', '.join(map(repr, repeated))} given more than once; give each once "
            "(a list of symbols is one parameter: symbols=AAPL,MSFT)",
        )
    return params


def cacheable_response(
    body: bytes, content_type: str, headers: dict, final: bool, if_none_match: str | None, max_age_s: int = 86400
):
    """A response with an ``ETag`` and a long ``Cache-Control`` when ``final`` (its
    content will not change for ``max_age_s``), answering 304 to a matching ``If-None-Match``."""
    headers = {"Content-Type": content_type, **headers}
    if final:
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers["ETag"] = etag
        headers["Cache-Control"] = f"public, max-age={int(max_age_s)}"
        if if_none_match and (if_none_match.strip() == "*" or etag in [t.strip() for t in if_none_match.split(",")]):
            del headers["Content-Type"]
            return Response(body="", status_code=304, headers=headers)
    else:
        headers["Cache-Control"] = "max-age=60"
    text = content_type.startswith(("application/json", "text/"))
    return Response(body=body.decode() if text else body, status_code=200, headers=headers)


class ServiceApp(Chalice):
    """A service's Chalice app. Registered here once, so no route repeats it:

    - one JSON line per request or scheduled run, with its metrics (``observe``);
    - CORS on every route (``CORS``), as the app's default;
    - errors: every view's ``ApiError`` as its JSON answer, the service's domain errors as
      ``answers`` says, anything unexpected as a 500 in the same shape (``api_view``,
      applied to each route as it is registered), and
      Chalice's own error answers in that shape too (``one_error_shape``);
    - the service's published contract at ``GET /api/<service>/openapi.json``.
    """

    def __init__(self, app_name: str, service: str, document: dict, answers: Answers | None = None):
        super().__init__(app_name=app_name)
        self.answers = dict(answers or {})
        observe_app(self, service)  # registered first: the outermost, it sees every answer
        one_error_shape(self)
        # The default for every route; set before any route is registered, as Chalice reads it then.
        self.api.cors = CORS

        def openapi_document():
            query_params(self, ())
            return json_response(document, headers={"Cache-Control": "public, max-age=3600"})

        self.route(f"/api/{service}/openapi.json", methods=["GET"])(openapi_document)

    def route(self, path: str, **kwargs):
        register = super().route(path, **kwargs)

        def decorator(view):
            register(api_view(view, self.answers))
            return view

        return decorator
