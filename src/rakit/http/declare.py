"""What an HTTP endpoint's declaration holds (``Endpoint``, ``Param``): see ``rakit.http.endpoints``."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from rakit.http.json import Key, Name
from rakit.http.prologue import Call, Handler
from rakit.security.tokens import AUTHENTICATED, OPEN, Need

JSON = "application/json"
MSGPACK = "application/msgpack"


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query"
    type: Any  # an (annotated) type: its msgspec JSON schema is the parameter's schema
    description: str
    required: bool = True
    default: Any = None

    def render(self) -> dict[str, Any]:
        schema = msgspec.json.schema(self.type)
        if self.default is not None:
            schema["default"] = self.default
        return {
            "name": self.name,
            "in": self.where,
            "required": self.where == "path" or self.required,
            "description": self.description,
            "schema": schema,
        }


def key_param(name: str, what: str) -> Param:
    return Param(name, "path", Key, f"{what}: 1-128 characters of `[A-Za-z0-9_.:-]`.")


def name_param(name: str, what: str, where: str = "path") -> Param:
    return Param(name, where, Name, f"{what}: 1-128 characters of `[A-Za-z0-9_.-]`.")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI form: /lock/status/{resource}
    tag: str
    summary: str
    body: type | None = None  # request Struct (JSON)
    ok: type | None = None  # 200 answer Struct (JSON)
    params: tuple[Param, ...] = ()
    errors: tuple[str, ...] = ()  # names in rakit.http.openapi.ERRORS
    responses: Mapping[str, Any] = field(default_factory=dict)  # further literal responses
    request: Mapping[str, Any] | None = None  # a literal requestBody (non-JSON bodies)
    access: Need | None = AUTHENTICATED  # what a token needs (name: the path parameter); OPEN: nothing
    leader: bool = False  # served by the Raft leader: any node forwards it there (rakit.http.forward.on_leader)
    handler: Handler | None = None  # what serves it, after the prologue (rakit.http.prologue)
    idempotent: bool = False  # repeating it is harmless: a forward that broke after sending is retried
    wait: str | float | None = None  # the body field or query parameter (seconds) it may wait, or fixed seconds
    admit: Callable[[Call[Any]], None] | None = None  # checked where it came in, before any forwarding

    @property
    def body_fields(self) -> frozenset[str]:
        return frozenset(f.name for f in msgspec.structs.fields(self.body)) if self.body is not None else frozenset()

    @property
    def whole_params(self) -> frozenset[str]:
        """The path parameters that are keys: they may hold ``:`` and take the rest of the path."""
        return frozenset(p.name for p in self.params if p.where == "path" and p.type is Key)

    @property
    def route_path(self) -> str:
        """The path in Starlette's form (``/lock/status/{resource:whole}``)."""
        return re.sub(r"{([^}]+)}", lambda m: f"{{{m[1]}:whole}}" if m[1] in self.whole_params else m[0], self.path)

    @property
    def answers(self) -> tuple[str, ...]:
        """Every error answer (names in ``rakit.http.openapi.ERRORS``), with the leader's when forwarded."""
        return (*self.errors, *LEADER) if self.leader else self.errors

    @property
    def needs_token(self) -> bool:
        """Does a client call need an API token (when tokens are on)?  Internal paths use the cluster secret."""
        return self.tag != "internal" and self.access is not OPEN


BODY = ("InvalidRequest", "TooLarge")  # every JSON body: decoding and size
LEADER = ("LeaderUnavailable",)
