"""How the HTTP layer answers: a domain error as its table says, an ApiError as itself,
anything else as a 500 in the same shape (shared.web.api_view, which ServiceApp applies
to every route)."""

from __future__ import annotations

from shared.errors import bad_request, not_found, unavailable
from shared.web import api_view


class Missing(Exception):
    pass


class MissingRule(Missing):
    pass


ANSWERS = {Missing: lambda e: not_found("thing_not_found", f"no thing {e}")}


def answer(exc: Exception, answers=ANSWERS):
    def view():
        raise exc

    return api_view(view, answers)()


def test_a_domain_error_is_answered_as_the_table_says_its_subclasses_too():
    response = answer(MissingRule("r1"))
    assert response.status_code == 404
    assert response.body == {"error": {"code": "thing_not_found", "message": "no thing r1"}}


def test_an_api_error_is_its_own_answer_with_retry_after():
    assert answer(bad_request("invalid_symbol", "no")).status_code == 400
    busy = answer(unavailable("upstream_unavailable", "later", 2.5, "vendor"))
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "3"
    assert busy.body["error"]["dependency"] == "vendor"


def test_anything_else_is_a_500_that_shows_nothing_of_it():
    response = answer(KeyError("secret detail"))
    assert response.status_code == 500
    assert response.body == {"error": {"code": "internal_error", "message": "an internal error occurred"}}
    assert answer(Missing("x"), answers={}).status_code == 500
