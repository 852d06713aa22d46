"""Node-to-node authentication with the cluster secret (``--cluster-secret``).

TO BE IMPLEMENTED (issue 7 item 1): ``InternalAuth.check(scope, headers)``
answers None (allowed) or an error (401) for internal paths; ``sign(...)``
gives the headers a node adds to its own internal calls.
"""

from __future__ import annotations

from collections.abc import Mapping

INTERNAL_PREFIXES = ("/request_vote", "/append_entries", "/install_snapshot", "/raft/", "/cache/invalidate",
                     "/cache/internal/", "/cache/stream", "/queue/internal/")


def is_internal(path: str) -> bool:
    return path.startswith(INTERNAL_PREFIXES)


class InternalAuth:
    def __init__(self, secret: str | None) -> None:
        self.secret = secret

    @property
    def enabled(self) -> bool:
        return self.secret is not None

    def headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        """Headers proving the secret, for a call this node makes to a peer."""
        return {}

    def check(self, method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> str | None:
        """None if the call proves the secret, else the reason (answered 401)."""
        return None
