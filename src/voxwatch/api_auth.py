"""Who an API request acts as, and whether its token's role allows the route: the bearer check every ``/api`` route
depends on (401, audit-logged, without a valid token) and the role dependencies (403, audit-logged, beyond it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .auth import Principal, Role
from .errors import Forbidden

if TYPE_CHECKING:
    from .service import Service


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `voxwatch token create NAME --role viewer|operator|admin [--expires-days N]`.",
)


def authenticated(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> Principal:
    """The bearer check every API route depends on: who the token acts as, or 401 (audit-logged)."""
    service: Service = request.app.state.service
    client = request.client.host if request.client else "?"
    token = credentials.credentials if credentials else None
    principal = service.authenticate(token, request.method, request.url.path, client)
    if principal is None:
        raise HTTPException(
            401, "a valid bearer token is required (Authorization: Bearer <token>)", headers={"WWW-Authenticate": "Bearer"}
        )
    request.state.actor = principal.actor
    return principal


def _needs(role: Role) -> Callable[[Request, Principal], str]:
    """A dependency admitting tokens of ``role`` or above (the acting token's audit name); 403, audit-logged, for
    the rest."""

    def check(request: Request, principal: Annotated[Principal, Depends(authenticated)]) -> str:
        if not principal.role.allows(role):
            raise Forbidden(
                f"{principal.actor} has role {principal.role}; {request.method} {request.url.path} needs role {role}"
                f" (create a token with 'voxwatch token create NAME --role {role}')"
            )
        return principal.actor

    return check


_viewer, _operator, _admin = _needs(Role.VIEWER), _needs(Role.OPERATOR), _needs(Role.ADMIN)
Operator = Annotated[str, Depends(_operator)]
Admin = Annotated[str, Depends(_admin)]
VIEWER, ADMIN = [Depends(_viewer)], [Depends(_admin)]
