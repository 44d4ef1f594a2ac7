"""OpenAPI declarations of the problem+json error responses each route can return."""

from __future__ import annotations

from typing import Any

from app.errors import PROBLEM_MEDIA_TYPE, Problem

_DESCRIPTIONS = {
    400: "The body could not be parsed (not JSON)",
    401: "Missing or invalid API key",
    403: "The key's role may not do this",
    404: "No such object (or not visible to this key)",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported media type or content encoding",
    422: "Invalid input; `errors` names each field",
    429: "Rate limit exceeded; `Retry-After` says when to try again",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these statuses, all problem+json."""
    return {
        status: {
            "description": _DESCRIPTIONS[status],
            "model": Problem,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted({400, 401, 403, 422, 429, *statuses})
    }
