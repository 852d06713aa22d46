"""The relay seam: one hop of a request to a peer (the leader, a topic's owner), failures mapped once.

Both forwarding paths use it -- ``rakit.http.forward`` (leader-only work) and
``rakit.queue.service`` (a topic's owner) -- so what a broken hop means is
decided here and nowhere else:

1. The connection could not be made (refused, connect timeout): the request
   was never sent, so going elsewhere is always safe -> ``None``.
2. The connection broke after the request was sent (the peer was killed,
   reset): safe to retry only when the caller says repeating it is harmless
   (``retry_safe``) -> ``None``; else ``Unavailable`` ("outcome unknown").
3. No answer within ``remaining + slack`` seconds, or any other client
   error: ``Unavailable`` ("outcome unknown").
4. Every hop carries the hop count (``hops + 1``) and, when the caller waits,
   what it still waits (``rakit.hops``); ``on_down(peer)`` hears of 1 and 2.
5. A peer's error answer (``{"error", "detail", ...}``, ``rakit.errors.
   error_body``) stands for the ``rakit.errors`` exception of its code:
   ``relayed_error`` rebuilds it (class, detail, extra fields), so a caller
   that re-raises it answers exactly what the peer answered.  An answer that
   is no error of the API (no JSON object, an unknown code) is
   ``Unavailable`` ("outcome unknown").

``HttpRelay`` is the aiohttp implementation; tests may pass any object with
the same ``call``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import msgspec

from rakit.errors import (
    CONFLICT_CODES,
    TREE,
    Conflict,
    NotElected,
    NotLeader,
    ProposalDropped,
    RakitError,
    Unavailable,
)
from rakit.hops import HOPS_HEADER, REMAINING_HEADER

CONNECT_TIMEOUT = 0.5
# An answer's headers passed back to the caller (the rest are the hop's own).
ANSWER_HEADERS = ("content-type", "retry-after")

# Error code -> its class.  ProposalDropped shares Unavailable's code (a leader's own retry signal);
# a plain Conflict carries one of CONFLICT_CODES.
_BY_CODE: dict[str, type[RakitError]] = {
    **{cls.code: cls for cls in TREE if cls not in (Conflict, ProposalDropped, NotElected)},
    **dict.fromkeys(CONFLICT_CODES, Conflict),
}
_error_answer = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Relayed:
    """A peer's answer, as it came."""

    status: int
    body: bytes
    headers: dict[str, str]


class Relay(Protocol):
    async def call(
        self,
        peer: str,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        hops: int,
        remaining: float | None,
        slack: float,
        retry_safe: bool,
        what: str,
        on_down: Callable[[str], None] | None = None,
    ) -> Relayed | None: ...


class HttpRelay:
    def __init__(self, session: aiohttp.ClientSession, keep_headers: tuple[str, ...] = ANSWER_HEADERS) -> None:
        self.session = session
        self.keep_headers = keep_headers

    async def call(
        self,
        peer: str,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        hops: int,
        remaining: float | None,
        slack: float,
        retry_safe: bool,
        what: str,
        on_down: Callable[[str], None] | None = None,
    ) -> Relayed | None:
        """The peer's answer; None when the caller may go elsewhere (rules 1-4)."""
        sent = {**headers, HOPS_HEADER: str(hops + 1)}
        if remaining is not None:
            sent[REMAINING_HEADER] = f"{remaining:.3f}"
        try:
            async with self.session.request(
                method,
                url,
                data=body,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=(remaining or 0.0) + slack, connect=CONNECT_TIMEOUT),
            ) as resp:
                content = await resp.read()
                kept = {k: v for k in self.keep_headers if (v := resp.headers.get(k)) is not None}
                return Relayed(resp.status, content, kept)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            if on_down is not None:
                on_down(peer)
            return None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError):
            if on_down is not None:
                on_down(peer)
            if retry_safe:
                return None
            raise Unavailable(f"{what} {peer} went away while answering; outcome unknown") from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f"{what} {peer} did not answer: {type(exc).__name__}; outcome unknown") from None


def relayed_error(answer: Relayed, who: str) -> RakitError:
    """The ``rakit.errors`` exception ``who``'s error answer stands for (rule 5)."""
    try:
        body = _error_answer.decode(answer.body)
    except msgspec.DecodeError:
        body = {}
    code, detail = body.pop("error", None), body.pop("detail", None)
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None or not isinstance(detail, str):
        return Unavailable(f"{who} answered HTTP {answer.status} with no error of the API; outcome unknown")
    # Rebuilt as the peer raised it, whatever the class's own constructor wants (a leader id, a code).
    error = cls.__new__(cls)
    RakitError.__init__(error, detail, **body)
    error.code = code
    if isinstance(error, NotLeader):
        error.leader_id = None  # not in the answer
    return error


__all__ = ["ANSWER_HEADERS", "CONNECT_TIMEOUT", "HttpRelay", "Relay", "Relayed", "relayed_error"]
