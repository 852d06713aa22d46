"""``/openapi.json`` (this node's OpenAPI 3.1 document) and ``/docs`` (Swagger UI, served locally).

The Swagger UI files come from the ``swagger_ui_bundle`` package and are
served under ``/docs/static/``: the page needs nothing from the internet.
Only the files the page uses are served (not the bundle's demo page, which
would load a remote example).
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from rakit.http.openapi30 import DOCS_STATIC, swagger_ui_dir

SWAGGER_FILES = frozenset(
    {
        "swagger-ui-bundle.js",
        "swagger-ui-bundle.js.map",
        "swagger-ui.css",
        "swagger-ui.css.map",
        "favicon-16x16.png",
        "favicon-32x32.png",
    }
)


class SwaggerFiles(StaticFiles):
    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in SWAGGER_FILES:
            return "", None  # 404
        return super().lookup_path(path)


# The documents come from ``app.state.docs`` (``rakit.http.openapi``, put there by
# ``rakit.http.app``): that module reads the endpoint declarations, which name these
# handlers, so importing it here would close a circle.


async def openapi_json(request: Request) -> Response:
    return Response(request.app.state.docs.document_json(), media_type="application/json")


async def openapi_30_json(request: Request) -> Response:
    return Response(request.app.state.docs.document_30_json(), media_type="application/json")


async def docs(request: Request) -> Response:
    return HTMLResponse(request.app.state.docs.docs_html())


def undeclared() -> list[BaseRoute]:
    """The Swagger UI's files (not API endpoints: not in the declarations)."""
    return [Mount(DOCS_STATIC, app=SwaggerFiles(directory=swagger_ui_dir()), name="docs-static")]
