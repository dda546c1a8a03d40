"""API tokens: made once and shown once, kept only as SHA-256 hashes; a bearer check for the service that records
every refused request in the audit log."""

from __future__ import annotations

import hashlib
import re
import secrets

from .errors import UsageError
from .store import Store

PREFIX = "vxw_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(store: Store, name: str, actor: str) -> str:
    """Make a token named ``name`` and return it: the only time it exists in clear (the store keeps its hash)."""
    if not _NAME.match(name):
        raise UsageError(
            f"invalid token name {name!r}: 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    store.add_token(name, digest(token), actor)
    return token


def verify_token(store: Store, token: str) -> str | None:
    """The name of the token, or None when it is unknown."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    return store.token_named(digest(token))


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


class Guard:
    """The service's check: a request's bearer token → the actor name ``token:<name>`` for the audit log, or None
    (and an ``unauthorized`` audit row naming the method, the path and the client address)."""

    def __init__(self, store: Store):
        self.store = store

    def actor(self, authorization: str | None, method: str, path: str, client: str) -> str | None:
        token = bearer(authorization)
        name = verify_token(self.store, token) if token else None
        if name is None:
            reason = "no bearer token" if token is None else "unknown token"
            self.store.audit("anonymous", "unauthorized", f"{method} {path}", f"{client}: {reason}")
            return None
        return f"token:{name}"
