"""The one error type that every service maps to a JSON error response."""

from __future__ import annotations


class ApiError(Exception):
    """A failure the caller should see as ``{"error": {"code", "message"}}``.

    ``status`` is the HTTP status; ``retry_after_s`` becomes a ``Retry-After``
    header (used with 429 and 503).
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after_s: float | None = None, details: dict | None = None
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.details = details or {}

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


def not_found(code: str, message: str) -> ApiError:
    return ApiError(404, code, message)


def unavailable(code: str, message: str, retry_after_s: float = 5) -> ApiError:
    return ApiError(503, code, message, retry_after_s=retry_after_s)
