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
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rakit.http import openapi

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


async def openapi_json(request: Request) -> Response:
    return Response(openapi.document_json(), media_type="application/json")


async def openapi_30_json(request: Request) -> Response:
    return Response(openapi.document_30_json(), media_type="application/json")


async def docs(request: Request) -> Response:
    return HTMLResponse(openapi.docs_html())


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Route("/docs/openapi-3.0.json", openapi_30_json, methods=["GET"]),
    Mount(openapi.DOCS_STATIC, app=SwaggerFiles(directory=openapi.swagger_ui_dir()), name="docs-static"),
]
