"""The one place that turns service results and ``ApiError`` into Chalice responses."""

from __future__ import annotations

import functools
import logging
import math

from chalice import Response

from shared.errors import ApiError

log = logging.getLogger(__name__)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})


def error_response(error: ApiError) -> Response:
    headers = {"Cache-Control": "no-store"}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return json_response(error.to_body(), error.status, headers)


def api_view(view):
    """Map ``ApiError`` to its JSON answer and anything unexpected to a 500 in
    the same shape, logged here with its stack, never shown to the caller."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except ApiError as error:
            return error_response(error)
        except Exception:
            log.exception("unhandled error in %s", view.__name__)
            return error_response(ApiError(500, "internal_error", "an internal error occurred"))

    return wrapper


def query_params(app) -> dict:
    return app.current_request.query_params or {}
