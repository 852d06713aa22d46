"""Who made a request, for the routes and the relaying code: the ``Identity`` the security middleware put on it.

``rakit.http.security`` authenticates a request (``rakit.security.tokens``)
and leaves its identity in ``request.state.identity``; a route asks here for
it, for the lock owner to record, or for a grant on a name found in the body.
"""

from __future__ import annotations

from starlette.requests import Request

from rakit.errors import Forbidden
from rakit.security.tokens import Identity


def identity_of(request: Request) -> Identity | None:
    """The authenticated caller of ``request`` (None when client tokens are off, or an open path)."""
    state = request.scope.get("state")
    return state.get("identity") if isinstance(state, dict) else None


def owner_of(request: Request) -> str | None:
    """The lock owner to record for ``request``: its token's name (None when tokens are off)."""
    identity = identity_of(request)
    return identity.name if identity is not None else None


def require(request: Request, family: str, action: str, name: str) -> None:
    """Raise ``Forbidden`` (403) unless the caller may do ``action`` of ``family`` on ``name``."""
    identity = identity_of(request)
    if identity is not None and not identity.allows(family, action, name):
        raise Forbidden(f"token {identity.name!r} is not granted {family}:{action} on {name!r}")
