"""Argument checks at the client's edge: a wrong type fails at once, naming the argument.

``@checked`` on a client class wraps its public methods (and ``__init__``):
each call's arguments are checked against the method's own annotations
before anything is sent, so ``Client`` and ``AsyncClient`` (annotated alike)
check alike and the checks cannot drift from the signatures:

- ``str`` is a str, ``int`` an int, ``float`` an int or float (never a bool,
  and finite), ``bool`` a bool, ``Literal[...]`` one of its values, a class
  an instance of it, ``Callable`` a callable, ``Sequence[X]`` a sequence of X;
- ``JSON`` (a payload: a message, a cache value) is anything ``json``
  encodes the way httpx will send it;
- ``Any`` and other forms are not checked.

>>> client.queue("emails").ack({"id": "m1"})
TypeError: Queue.ack(): message_id must be a str message id or a Message, not dict

A wrong type raises ``TypeError``; a right type with an impossible value
(``nan``, an unknown lock mode) ``ValueError``.  Ranges the server enforces
(e.g. a ttl above the maximum) stay the server's: ``InvalidRequest``.
"""

from __future__ import annotations

import collections.abc as abc
import functools
import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, TypeVar, get_args, get_origin, get_type_hints

from rakit.client.calls import Message

__all__ = ["JSON", "checked", "message_and_consumer", "semaphore_counts"]

#: A payload: any value JSON encodes (checked by encoding it as httpx will).
JSON: TypeAlias = Annotated[Any, "json"]

_C = TypeVar("_C", bound=type)


@dataclass(frozen=True, slots=True)
class _Kind:
    """One accepted kind of value: ``what`` it is called, whether a value ``fits``, and ``verify``
    (for a value of the right type that is still wrong: raises ``ValueError``/``TypeError``)."""

    what: str
    fits: Callable[[Any], bool]
    verify: Callable[[str, Any], None] | None = None


def _finite(label: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):  # an int is finite (and may not fit a float)
        raise ValueError(f"{label} must be a finite number, not {value!r}")


def _json(label: str, value: Any) -> None:
    try:  # the settings of httpx's encoder: what fails here would fail deep inside httpx
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{label} must be JSON-serializable: {exc}") from None
    except RecursionError:
        raise ValueError(f"{label} must be JSON-serializable: it is nested too deeply (or contains itself)") from None


def _literal(choices: tuple[Any, ...]) -> _Kind:
    what = " or ".join(repr(c) for c in choices)

    def verify(label: str, value: Any) -> None:
        if value not in choices:
            raise ValueError(f"{label} must be {what}, not {value!r}")

    types_ = tuple({type(c) for c in choices})
    return _Kind(what, lambda v: isinstance(v, types_), verify)


def _sequence(origin: type, item: list[_Kind]) -> _Kind:
    what = "a sequence of " + re.sub(r"\ban? ", "", _either(item))  # "a sequence of str"

    def verify(label: str, value: Any) -> None:
        for i, element in enumerate(value):
            if not any(k.fits(element) for k in item):
                raise TypeError(f"{label} must be {what}, but item {i} is {type(element).__name__}")

    return _Kind(what, lambda v: isinstance(v, origin) and not isinstance(v, (str, bytes)), verify)


def _kinds(hint: Any, name: str) -> list[_Kind] | None:
    """The kinds of value ``hint`` accepts (None: anything, no check)."""
    origin = get_origin(hint)
    if hint is Any or isinstance(hint, TypeVar):
        return None
    if origin is Annotated:
        if "json" in hint.__metadata__:
            return [_Kind("JSON", lambda v: True, _json)]
        return _kinds(get_args(hint)[0], name)
    if origin is typing.Union or origin is types.UnionType:
        kinds: list[_Kind] = []
        for alternative in get_args(hint):
            more = _kinds(alternative, name)
            if more is None:
                return None
            kinds += more
        return kinds
    if hint is None or hint is type(None):
        return [_Kind("None", lambda v: v is None)]
    if hint is bool:
        return [_Kind("a bool", lambda v: isinstance(v, bool))]
    if hint is int:
        return [_Kind("an int", lambda v: isinstance(v, int) and not isinstance(v, bool))]
    if hint is float:
        return [_Kind("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), _finite)]
    if hint is str:
        return [_Kind("a str message id" if name == "message_id" else "a str", lambda v: isinstance(v, str))]
    if origin is Literal:
        return [_literal(get_args(hint))]
    if origin is abc.Callable:
        return [_Kind("a callable", callable)]
    if isinstance(origin, type) and issubclass(origin, abc.Sequence) and len(get_args(hint)) == 1:
        item = _kinds(get_args(hint)[0], name)
        return None if item is None else [_sequence(origin, item)]
    cls = origin if isinstance(origin, type) else hint
    if isinstance(cls, type):
        article = "an" if cls.__name__[:1].lower() in "aeiou" else "a"
        return [_Kind(f"{article} {cls.__name__}", lambda v: isinstance(v, cls))]
    return None


def _either(kinds: list[_Kind]) -> str:
    whats = list(dict.fromkeys(k.what for k in kinds))
    return whats[0] if len(whats) == 1 else ", ".join(whats[:-1]) + " or " + whats[-1]


def _check(label: str, kinds: list[_Kind], value: Any) -> None:
    for kind in kinds:
        if kind.fits(value):
            if kind.verify is not None:
                kind.verify(label, value)
            return
    raise TypeError(f"{label} must be {_either(kinds)}, not {type(value).__name__}")


def _wrap(cls: type, fn: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(fn)
    where = f"{cls.__name__}()" if fn.__name__ == "__init__" else f"{cls.__name__}.{fn.__name__}()"
    rules: dict[str, list[_Kind]] | None = None  # built at the first call: every annotated name exists by then

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal rules
        if rules is None:
            hints = get_type_hints(fn, include_extras=True)
            rules = {
                name: kinds
                for name in signature.parameters
                if name in hints and (kinds := _kinds(hints[name], name)) is not None
            }
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return  # a missing or unknown argument: the call itself says so, as Python words it
        for name, value in bound.arguments.items():
            if name in rules:
                _check(f"{where}: {name}", rules[name], value)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return await fn(*args, **kwargs)

        return run_async

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return fn(*args, **kwargs)

    return run


def checked(cls: _C) -> _C:
    """Check the arguments of ``cls``'s public methods and ``__init__`` against their annotations."""
    for name, fn in list(vars(cls).items()):
        if inspect.isfunction(fn) and (name == "__init__" or not name.startswith("_")):
            setattr(cls, name, _wrap(cls, fn))
    return cls


def message_and_consumer(queue: Any, op: str, message_id: str | Message, consumer_id: str | None) -> tuple[str, str]:
    """The message id and consumer of ``queue.<op>(message_id, consumer_id)``.

    A ``Message`` gives its id and, unless ``consumer_id`` is given, the
    consumer that popped it; else the client's own id is the consumer.
    """
    if isinstance(message_id, Message):
        if message_id.topic != queue.topic:
            raise ValueError(
                f"{type(queue).__name__}.{op}(): the Message is of topic {message_id.topic!r}, "
                f"not this queue's {queue.topic!r}"
            )
        return message_id.message_id, consumer_id or message_id.consumer_id or queue.client.client_id
    return message_id, consumer_id or queue.client.client_id


def semaphore_counts(where: str, limit: int, permits: int) -> None:
    """``limit`` and ``permits`` of a semaphore, checked before anything is sent (``ValueError``)."""
    if limit < 1:
        raise ValueError(f"{where}: limit must be at least 1, not {limit}")
    if not 1 <= permits <= limit:
        raise ValueError(f"{where}: permits must be from 1 to the limit ({limit}), not {permits}")
