"""JSON in and out of the HTTP API: msgspec decoding into Structs, one error shape.

Bad input becomes ``InvalidRequest`` (422) or ``TooLarge`` (413) here, with
msgspec's message as the detail and the offending field path as ``field``.

Every request body is read through ``read_body``, which bounds its size
before anything parses it: a ``Content-Length`` over the limit is refused
before a byte is read, and a chunked body as soon as it passes the limit
(413).  How long a body may take to arrive is bounded below, by the node's
HTTP protocol (``rakit.server.http_protocol`` rule 3: ``408 request_timeout``
and the connection closed), whoever reads it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

import msgspec
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from rakit.errors import InvalidRequest, TooLarge

MAX_VALUE_BYTES = 1024 * 1024
# A body may carry one value of MAX_VALUE_BYTES plus its envelope.
MAX_BODY_BYTES = MAX_VALUE_BYTES + 64 * 1024
DRAIN_BYTES = 16 * 1024 * 1024  # an oversize body up to this is read (and dropped) before the 413
DRAIN_SECONDS = 5.0


# Names, as docs/api.md defines them, matched whole.  msgspec checks a pattern with
# Python's ``re.search``, where ``$`` also matches just before a final newline
# (``^[a-z]+$`` accepts ``"name\n"``): the ``(?!\n)`` after it refuses that
# place.  Not ``\Z``: the pattern is also the OpenAPI document's, an ECMA-262
# regex, where ``\Z`` is a plain ``Z``; ``$(?!\n)`` means the same in both.
KEY_PATTERN = r"^[A-Za-z0-9_.:-]+$(?!\n)"  # resource, key, message_id
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$(?!\n)"  # topic, consumer_id, client_id, node and member ids
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=KEY_PATTERN)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=NAME_PATTERN)]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def dumps(obj: Any) -> bytes:
    return _encoder.encode(obj)


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_encoder.encode(obj), status_code=status, headers=headers, media_type="application/json")


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, at most ``limit`` bytes, else 413.

    A declared body a little over the limit is read and dropped before the
    413 (up to ``DRAIN_BYTES`` and ``DRAIN_SECONDS``): closing a connection
    with unread data makes the kernel send a reset, which can destroy the 413
    before the client reads it.  Anything larger, or a chunked body over the
    limit, is refused without reading on."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN_BYTES:
            await _drain(request, int(declared))
        raise TooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # no declared length: answered at once (the client may never stop)
            raise TooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request, budget: int) -> None:
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in request.stream():
                budget -= len(chunk)
                if budget < 0:
                    return
    except (TimeoutError, ClientDisconnect):
        return


def decode(data: bytes, schema: type[T]) -> T:
    """``data`` (a JSON body) as ``schema``; ``InvalidRequest`` for anything else.

    msgspec raises more than its own errors on hostile input: ``UnicodeDecodeError``
    for invalid UTF-8 in a string (and lets it through unchecked inside a ``Raw``
    value, which would be stored and served as is), ``RecursionError`` for arrays
    nested ~1000 deep.  Both are malformed JSON here.
    """
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return msgspec.json.decode(data, type=schema)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else None
        raise InvalidRequest(message, **({"field": field} if field else {})) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("malformed JSON: nested too deeply") from None


async def parse(request: Request, schema: type[T]) -> T:
    return decode(await read_body(request), schema)


def check_value_size(raw: bytes, what: str = "value") -> None:
    if len(raw) > MAX_VALUE_BYTES:
        raise TooLarge(f"{what} is {len(raw)} bytes once encoded, over the {MAX_VALUE_BYTES}-byte limit")


class WholeSegment(Convertor[str]):
    """``{key:whole}``: the rest of the path, newlines included, for ``path_key`` to judge.

    Starlette's ``{key:path}`` is ``.*`` inside ``^...$``: ``.`` stops at a
    newline and ``$`` matches before a final one, so ``/kv/get/NAME%0A`` would
    reach the handler as ``NAME``, the newline dropped before any check."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("whole", WholeSegment())

_key_decoder = msgspec.json.Decoder(Key)
_name_decoder = msgspec.json.Decoder(Name)


def path_key(value: str, what: str = "key") -> str:
    """Validate a ``key``/``resource`` taken from the URL path."""
    return _check_path(value, what, _key_decoder)


def path_name(value: str, what: str) -> str:
    """Validate a ``topic``/``consumer_id``/``client_id`` taken from the URL path."""
    return _check_path(value, what, _name_decoder)


def _check_path(value: str, what: str, decoder: msgspec.json.Decoder[Any]) -> str:
    try:
        checked: str = decoder.decode(_encoder.encode(value))
        return checked
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"{what} in the URL: {exc}", field=what) from None


def query_number(request: Request, name: str, default: float, low: float, high: float) -> float:
    """A number from the query string, ``default`` when absent; 422 naming it when bad."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, got {text!r}", field=name) from None
    if not math.isfinite(value) or not low <= value <= high:
        raise InvalidRequest(f"{name} must be between {low:g} and {high:g}, got {text!r}", field=name)
    return value
