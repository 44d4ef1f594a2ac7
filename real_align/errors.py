"""Errors the client raises: the server's problem+json, or what went wrong on the way there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RealAlignError(Exception):
    """A failed call. From the server: its RFC 9457 problem+json (status, code, title, detail, field)."""

    def __init__(
        self,
        *,
        status: int | None,
        code: str,
        title: str,
        detail: str | None = None,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        problem: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.field = field
        self.errors = errors or []
        self.problem: dict[str, Any] = dict(problem or {})
        self.retry_after = retry_after
        where = f" [{field}]" if field else ""
        prefix = f"{status} " if status is not None else ""
        super().__init__(f"{prefix}{code}: {detail or title}{where}")


class BadRequestError(RealAlignError):
    """400."""


class AuthenticationError(RealAlignError):
    """401: the API key is missing, wrong, revoked or expired."""


class PermissionDeniedError(RealAlignError):
    """403: the key's role may not use this route."""


class NotFoundError(RealAlignError):
    """404: no such object, or one the key may not see."""


class ConflictError(RealAlignError):
    """409: e.g. an export that is not finished yet."""


class LeaseExpiredError(ConflictError):
    """409 `lease_expired`: the assignment's lease ended (expired, released, skipped, or taken over after it
    expired), so it can no longer be labelled, renewed, released or skipped: claim again."""


class AlreadyLabeledError(ConflictError):
    """409 `already_labeled`: the assignment already holds a different label."""


class IdempotencyKeyReusedError(ConflictError):
    """409 `idempotency_key_reused`: this Idempotency-Key was sent before with another label."""


class RenewalLimitError(ConflictError):
    """409 `renewal_limit`: the lease was renewed as often as the server allows."""


class UndoRefusedError(ConflictError):
    """409 `undo_refused`: only your last label can be withdrawn, within the undo window."""


class PayloadTooLargeError(RealAlignError):
    """413: the request body is over the server's limit (lower `max_request_bytes`)."""


class InvalidInputError(RealAlignError):
    """422: invalid input; `field` names the first offending field, `errors` lists all."""


class RateLimitedError(RealAlignError):
    """429 after the retries ran out, or with a Retry-After longer than the client will wait."""


class ActiveLeaseLimitError(RateLimitedError):
    """429 `active_lease_limit`: the annotator holds as many live leases as allowed; label, skip or release
    one (not retried: waiting only helps once a lease expires, `retry_after` seconds from now)."""


class ServerError(RealAlignError):
    """5xx after the retries ran out."""


class TransportError(RealAlignError):
    """The server could not be reached, or the connection broke (no HTTP status)."""


class WaitTimeoutError(RealAlignError, TimeoutError):
    """A wait_* call ran past its timeout."""


class ExportFailedError(RealAlignError):
    """The export finished with status `failed`; `detail` carries the server's error."""


class ChecksumMismatchError(RealAlignError):
    """A downloaded export file's sha256 differs from the one the server recorded."""


_BY_STATUS: dict[int, type[RealAlignError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidInputError,
    429: RateLimitedError,
}


# Problem codes with an exception of their own (a subclass of their status's).
_BY_CODE: dict[tuple[int, str], type[RealAlignError]] = {
    (409, "lease_expired"): LeaseExpiredError,
    (409, "already_labeled"): AlreadyLabeledError,
    (409, "idempotency_key_reused"): IdempotencyKeyReusedError,
    (409, "renewal_limit"): RenewalLimitError,
    (409, "undo_refused"): UndoRefusedError,
    (429, "active_lease_limit"): ActiveLeaseLimitError,
}


def error_for_status(status: int, code: str | None = None) -> type[RealAlignError]:
    """The exception class for an HTTP error status and, where it has one of its own, problem code."""
    if code is not None and (status, code) in _BY_CODE:
        return _BY_CODE[status, code]
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, RealAlignError)
