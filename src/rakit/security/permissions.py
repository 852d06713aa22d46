"""What each path asks of an API token: a table built from the endpoint declarations.

The HTTP layer declares every endpoint once (``rakit.http.endpoints``) and
builds this table from those declarations; the token checker
(``rakit.security.tokens.ClientAuth``) only reads it, so the security layer
never imports the HTTP one.

Rules:

1. A declared path answers its endpoint's ``access``: ``OPEN`` (no token),
   ``AUTHENTICATED`` (any valid token), or a ``Need``.  When the ``Need``
   names a path parameter, the name is read off the path (the last
   parameter of a ``whole`` path takes the rest of the path); a ``Need`` that
   names a body field is answered without a name here (the handler checks
   the name once the body is decoded).
2. Two endpoints on one path (GET and POST ``/cluster/members``) must ask the
   same: the table is per path, checked before the method is.
3. A path no endpoint declares asks only for a valid token (it then answers
   404 or 405): an unknown path never opens a door.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rakit.security.tokens import AUTHENTICATED, Need

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)}")


class PathRule:
    """One declared path template and what it asks."""

    __slots__ = ("access", "name_group", "prefix", "regex", "template")

    def __init__(self, template: str, access: Need | None, whole: frozenset[str]) -> None:
        self.template = template
        self.access = access
        names = _PARAM.findall(template)
        pattern, at = "", 0
        for i, m in enumerate(_PARAM.finditer(template)):
            pattern += re.escape(template[at : m.start()])
            last = i == len(names) - 1 and m.end() == len(template)
            pattern += f"(?P<{m.group(1)}>{'.+' if last and m.group(1) in whole else '[^/]+'})"
            at = m.end()
        pattern += re.escape(template[at:])
        self.regex = re.compile(pattern + r"\Z")
        self.prefix = template.split("{", 1)[0]
        self.name_group = access.name if access is not None and access.name in names else None

    def answer(self, match: re.Match[str]) -> Need | None:
        access = self.access
        if access is None or access is AUTHENTICATED:
            return access
        return access._replace(name=match.group(self.name_group) if self.name_group else None)


class Permissions:
    """``need(path)``: what ``path`` asks of a token (rules 1-3)."""

    def __init__(self, rules: Iterable[tuple[str, Need | None, frozenset[str]]]) -> None:
        """``rules``: (path template, access, the path parameters that take the rest of a path)."""
        self._literal: dict[str, Need | None] = {}
        self._templated: list[PathRule] = []
        seen: dict[str, Need | None] = {}
        for template, access, whole in rules:
            if template in seen:
                if seen[template] != access:  # rule 2
                    raise ValueError(f"{template} is declared twice with different access")
                continue
            seen[template] = access
            if "{" in template:
                self._templated.append(PathRule(template, access, whole))
            else:
                self._literal[template] = access
        self._templated.sort(key=lambda r: -len(r.prefix))  # the most specific prefix first

    def need(self, path: str) -> Need | None:
        if path in self._literal:
            access = self._literal[path]
            return access._replace(name=None) if access is not None and access.name else access
        for rule in self._templated:
            if path.startswith(rule.prefix) and (match := rule.regex.match(path)):
                return rule.answer(match)
        return AUTHENTICATED  # rule 3

    def templates(self) -> list[str]:
        return [*self._literal, *(r.template for r in self._templated)]
