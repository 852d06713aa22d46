"""Client API tokens and their grants (``--auth-tokens``).

TO BE IMPLEMENTED (issue 7 item 2): ``ClientAuth.check(method, path, headers)``
answers the caller's identity, or an error (401 no/invalid token, 403 outside
its grant).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class ClientAuth:
    def __init__(self, tokens_file: Path | None) -> None:
        self.tokens_file = tokens_file

    @property
    def enabled(self) -> bool:
        return self.tokens_file is not None
