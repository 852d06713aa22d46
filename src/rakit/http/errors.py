"""The one place where exceptions become ``{"error", "detail"}`` responses."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from rakit.errors import STATUS_CODES, RakitError, error_body
from rakit.http.json import json_response

log = logging.getLogger(__name__)

HTTP_CODES = STATUS_CODES  # derived from the error tree (rakit.errors)


async def rakit_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RakitError)
    headers = {"Retry-After": "1"} if exc.retry_after else None
    return json_response(exc.body(), status=exc.status, headers=headers)


async def client_gone(request: Request, exc: Exception) -> Response:
    # The client disconnected while its body was being read: nobody will read an answer.
    return Response(status_code=499)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    detail = exc.detail if isinstance(exc.detail, str) else code
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return json_response(error_body(code, detail), status=exc.status_code, headers=exc.headers)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # A broken invariant: logged loudly, still answered in the API's shape.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response(error_body("internal", f"{type(exc).__name__}: internal error"), status=500)


HANDLERS = {
    RakitError: rakit_error,
    HTTPException: http_error,
    ClientDisconnect: client_gone,
    Exception: unexpected_error,
}
