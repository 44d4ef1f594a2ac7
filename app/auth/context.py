"""The caller of a request, as the auth dependency established it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.auth.models import Role


@dataclass(frozen=True)
class Caller:
    """Who is calling: a principal (or the bootstrap admin, which has no principal row)."""

    name: str
    role: Role
    principal_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    projects: frozenset[uuid.UUID] = frozenset()
    # The principal's reviewer flag: an annotator with it may work its projects' review queues.
    reviewer: bool = False
    # The key's HMAC (app/auth/keys.hash_key); None for the bootstrap admin.
    key_hash: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def may_review(self) -> bool:
        """Admins, data teams, and annotators flagged as reviewers (project visibility is checked apart)."""
        return self.role in (Role.ADMIN, Role.DATA_TEAM) or self.reviewer

    @property
    def rate_key(self) -> str:
        """What rate limits count against: the key, or the bootstrap admin."""
        return rate_key_for(self.key_hash) if self.key_hash else "bootstrap"


def rate_key_for(key_hash: str) -> str:
    """The rate-limit counter of a key, from its HMAC alone: the queue's one-statement path counts a request
    before it has looked the key up, against the same counter as every other route."""
    return key_hash[:32]


BOOTSTRAP_ADMIN = Caller(name="admin", role=Role.ADMIN)
