"""The OpenAPI 3.0 translation of the node's document and the ``/docs`` page (Swagger UI).

The bundled Swagger UI (4.x) reads OpenAPI 3.0 only: ``build_document_30``
translates the 3.1 document of ``rakit.http.openapi`` mechanically
(``nullable`` instead of ``null`` types, boolean exclusive bounds, ...).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# -- OpenAPI 3.0, for Swagger UI 4.x ---------------------------------------------------------

_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf")
_SUBSCHEMA_MAPS = ("properties",)
_SUBSCHEMAS = ("items", "additionalProperties", "not")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"allOf": [schema], "nullable": True}
    return {**schema, "nullable": True}


def schema_30(schema: Any) -> Any:
    """One JSON Schema 2020-12 (OpenAPI 3.1) schema as an OpenAPI 3.0 Schema Object."""
    if not isinstance(schema, dict):
        return schema
    s = dict(schema)
    for key in _SUBSCHEMA_LISTS:
        if key in s:
            s[key] = [schema_30(x) for x in s[key]]
    for key in _SUBSCHEMA_MAPS:
        if key in s:
            s[key] = {k: schema_30(v) for k, v in s[key].items()}
    for key in _SUBSCHEMAS:
        if isinstance(s.get(key), dict):
            s[key] = schema_30(s[key])
    if "const" in s:
        s["enum"] = [s.pop("const")]
    if "examples" in s:
        examples = s.pop("examples")
        if examples:
            s["example"] = examples[0]
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(s.get(bound), (int, float)) and not isinstance(s[bound], bool):
            s[plain] = s[bound]
            s[bound] = True
    if s.get("required") == []:
        del s["required"]
    nullable = False
    if isinstance(s.get("type"), list):
        types = [t for t in s["type"] if t != "null"]
        nullable = len(types) < len(s["type"])
        if len(types) == 1:
            s["type"] = types[0]
        else:
            s.pop("type")
            s["anyOf"] = [{"type": t} for t in types]
    if "enum" in s and None in s["enum"]:
        s["enum"] = [v for v in s["enum"] if v is not None]
        nullable = True
    if "anyOf" in s and {"type": "null"} in s["anyOf"]:
        rest = [x for x in s["anyOf"] if x != {"type": "null"}]
        nullable = True
        if len(rest) == 1:
            del s["anyOf"]
            merged = rest[0]
            s = {**merged, **s} if "$ref" not in merged else {**s, "allOf": [merged]}
        else:
            s["anyOf"] = rest
    if "$ref" in s and len(s) > 1:
        ref = {"$ref": s.pop("$ref")}
        s["allOf"] = [ref, *s.get("allOf", [])]
    if nullable:
        s = _nullable(s)
    return s


def _params_30(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**p, "schema": schema_30(p["schema"])} for p in params]


def _content_30(content: dict[str, Any]) -> dict[str, Any]:
    return {media: ({**m, "schema": schema_30(m["schema"])} if "schema" in m else m) for media, m in content.items()}


def build_document_30(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` (OpenAPI 3.1, as built here) translated to OpenAPI 3.0.3."""
    out = copy.deepcopy(dict(doc))
    out["openapi"] = "3.0.3"
    out["info"] = {
        **out["info"],
        "description": (
            "*A translation to OpenAPI 3.0 for this page; the canonical document is "
            "[/openapi.json](/openapi.json) (OpenAPI 3.1).*\n\n" + out["info"]["description"]
        ),
    }
    out["info"].pop("summary", None)
    for item in out["paths"].values():
        for operation in item.values():
            if "parameters" in operation:
                operation["parameters"] = _params_30(operation["parameters"])
            if "requestBody" in operation:
                body = operation["requestBody"]
                body["content"] = _content_30(body["content"])
            for response in operation["responses"].values():
                if "content" in response:
                    response["content"] = _content_30(response["content"])
    components = out["components"]
    components["schemas"] = {k: schema_30(v) for k, v in components["schemas"].items()}
    for response in components["responses"].values():
        response["content"] = _content_30(response["content"])
    components["headers"] = {k: {**h, "schema": schema_30(h["schema"])} for k, h in components["headers"].items()}
    return out


# -- the page --------------------------------------------------------------------------

DOCS_STATIC = "/docs/static"


def swagger_ui_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


def swagger_ui_major() -> int:
    """The bundled Swagger UI's major version (its directory is ``swagger-ui-X.Y.Z``); 0 if unknown."""
    found = re.search(r"(\d+)\.\d+\.\d+$", swagger_ui_dir().name)
    return int(found.group(1)) if found else 0


def docs_spec_url() -> str:
    # Swagger UI reads OpenAPI 3.1 from version 5 on; before that, the 3.0 translation.
    return "/openapi.json" if swagger_ui_major() >= 5 else "/docs/openapi-3.0.json"


@functools.cache
def docs_html() -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>rakit node API</title>
  <link rel="stylesheet" href="{DOCS_STATIC}/swagger-ui.css">
  <link rel="icon" type="image/png" sizes="32x32" href="{DOCS_STATIC}/favicon-32x32.png">
  <style>body {{ margin: 0; }}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{DOCS_STATIC}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{docs_spec_url()}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""
