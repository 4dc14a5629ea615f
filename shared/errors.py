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


# What a 503 names as the dependency that failed: a kind of thing, never its address.
DEPENDENCIES = ("vendor", "redis", "postgresql", "s3", "dynamodb", "sns", "cognito", "ssm", "secretsmanager")


def unavailable(code: str, message: str, retry_after_s: float = 5, dependency: str | None = None) -> ApiError:
    """A dependency failed: come back after ``retry_after_s``. The answer names the
    dependency's kind (``DEPENDENCIES``) and never its address or a stack."""
    assert dependency is None or dependency in DEPENDENCIES, dependency
    return ApiError(
        503, code, message, retry_after_s=retry_after_s, details={"dependency": dependency} if dependency else None
    )


# Error codes AWS services answer when they throttle a caller.
THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "Throttled",
    "RequestLimitExceeded",
    "SlowDown",
    "TooManyRequestsException",
    "LimitExceededException",
}


def aws_failures() -> tuple[type[BaseException], ...]:
    """What an AWS call raises when the service fails it: an error answer (ClientError),
    no answer or a broken connection (BotoCoreError), or an answer botocore cannot read
    (its ResponseParserError is no BotoCoreError, and its JSON parser lets a
    UnicodeDecodeError, a ValueError, out; a body of the wrong shape, a KeyError or
    TypeError in the code reading it)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    return (ClientError, BotoCoreError, ResponseParserError, ValueError, KeyError, TypeError)


def aws_unavailable(exc: BaseException, code: str, what: str, dependency: str) -> ApiError:
    """The 503 for an AWS call that failed (after the SDK's own retries): throttled,
    or not answering (unreachable, too slow, or an answer it could not read)."""
    response = getattr(exc, "response", None)  # a ClientError's; None on a timeout
    error_code = (response.get("Error") or {}).get("Code", "") if isinstance(response, dict) else ""
    if error_code in THROTTLING:
        return unavailable(code, f"{what} is throttling requests; try again shortly", 2, dependency)
    return unavailable(code, f"{what} is not answering; try again shortly", 5, dependency)


def error_body(code: str, message: str | None) -> dict:
    """The one shape of every error answer: ``{"error": {"code", "message"}}``."""
    return {"error": {"code": code, "message": message or code.replace("_", " ")}}


def snake_code(name: str) -> str:
    """A framework's error name as one of our codes: ``UnsupportedMediaType`` ->
    ``unsupported_media_type``, ``MethodNotAllowedError`` -> ``method_not_allowed``,
    ``UNAUTHORIZED`` -> ``unauthorized``."""
    import re

    name = name.removesuffix("Error") if not name.isupper() else name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").replace(" ", "_").lower()
