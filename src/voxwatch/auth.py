"""API tokens: made once and shown once, kept only as SHA-256 hashes, each with a role and an optional expiry; a
bearer check for the service that records every refused request in the audit log."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from .errors import UsageError
from .store import Store

PREFIX = "vxw_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MAX_EXPIRES_DAYS = 3650


class Role(StrEnum):
    """What a token may do; each role may do everything the roles before it may.

    ``viewer`` reads alerts (and their audio), streams, voices and search results; ``operator`` also adds and stops
    streams, acknowledges alerts and starts search jobs; ``admin`` also enrolls and forgets voices, manages webhooks
    and reads the audit log."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class Principal:
    """Who a valid token acts as: ``token:<name>`` in the audit log, with the token's role."""

    actor: str
    role: Role


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, name: str, actor: str, role: Role, expires_days: int | None = None) -> str:
    """Make a token named ``name`` with ``role``, valid for ``expires_days`` days (None: until removed), and return
    it: the only time it exists in clear (the store keeps its hash)."""
    if not _NAME.match(name):
        raise UsageError(
            f"invalid token name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    if expires_days is not None and not 1 <= expires_days <= MAX_EXPIRES_DAYS:
        raise UsageError(f"--expires-days {expires_days}: give 1 to {MAX_EXPIRES_DAYS} days, or leave it out")
    expires_at = None
    if expires_days is not None:
        expires_at = (datetime.now(UTC) + timedelta(days=expires_days)).isoformat(timespec="seconds")
    token = PREFIX + secrets.token_urlsafe(32)
    store.add_token(name, digest(token), actor, Role(role).value, expires_at)
    return token


class Guard:
    """The service's check: a request's bearer token → its :class:`Principal`, or None (and an ``unauthorized``
    audit row naming the method, the path, the client address and why: no token, an unknown or an expired one)."""

    def __init__(self, store: Store):
        self.store = store

    def principal(self, token: str | None, method: str, path: str, client: str) -> Principal | None:
        """Who ``token`` (from an ``Authorization: Bearer`` header; None when there is none) acts as."""
        found = self.store.token(digest(token)) if token and token.startswith(PREFIX) and len(token) <= 200 else None
        reason = None
        if token is None:
            reason = "no bearer token"
        elif found is None:
            reason = "unknown token"
        elif found[2] is not None and found[2] <= datetime.now(UTC).isoformat(timespec="seconds"):
            reason = f"token {found[0]!r} expired at {found[2]}"
        if reason is not None or found is None:
            self.store.audit("anonymous", "unauthorized", f"{method} {path}", f"{client}: {reason}")
            return None
        return Principal(f"token:{found[0]}", Role(found[1]))
