"""The package's layers, read from its source (AST): pure cores, no circles, the HTTP edge on top.

Rules:
1. Pure modules (Raft, the state machines, the cache's rule modules, the
   ring, the WAL damage reader, the rate limiter) import no I/O, clock or
   concurrency module, and no rakit module that is not pure itself (or
   ``rakit.errors``).  Randomness comes in as a seeded ``random.Random``: no
   module-level ``random`` function is called.
2. No import circles between modules (every import counts, also one inside a
   function; only ``if TYPE_CHECKING:`` blocks do not).
3. Layers: nothing below the HTTP edge imports ``rakit.http``
   (``rakit.node``, ``rakit.queue``, ``rakit.cache``, ``rakit.security``,
   ``rakit.storage``, ``rakit.transport``, the pure ones), nor Starlette
   (requests and responses are the edge's business); the client imports
   no server module (only ``rakit.security.internal`` to sign operator calls,
   and ``rakit.errors``).
4. The process layer (``rakit.server``: uvicorn, its protocol, the TLS gate,
   ``--join``) sits above the HTTP edge: it may import ``rakit.http`` and
   ``rakit.node``; nothing in ``rakit.node`` or ``rakit.http`` (nor below)
   imports ``rakit.server`` (only the command line starts it).

``KNOWN`` lists the edges that still break rule 2 or 3, each to be cut; a
known edge that is gone fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

PURE_PREFIXES = (
    "rakit.raft",
    "rakit.statemachines",
    "rakit.cache.rules.checks",
    "rakit.cache.rules.coherence",
    "rakit.cache.rules.contact",
    "rakit.cache.rules.lru",
    "rakit.cache.rules.messages",
    "rakit.cache.rules.versions",
    "rakit.queue.ring",
    "rakit.storage.wal_damage",
    "rakit.security.ratelimit",
    "rakit.node.deadlines",
    "rakit.node.connection_budget",
)
IMPURE_MODULES = {
    "asyncio",
    "time",
    "socket",
    "select",
    "selectors",
    "signal",
    "threading",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "os",
    "pathlib",
    "tempfile",
    "shutil",
    "datetime",
    "uuid",
    "secrets",
    "sqlite3",
    "fcntl",
    "aiohttp",
    "redis",
    "httpx",
    "starlette",
    "uvicorn",
    "uvloop",
    "websockets",
}
BELOW_HTTP = ("rakit.node", "rakit.queue", "rakit.cache", "rakit.security", "rakit.storage", "rakit.transport")
CLIENT_MAY_IMPORT = ("rakit.client", "rakit.security.internal", "rakit.errors")

SERVER = ("rakit.server",)
SERVER_MAY_BE_IMPORTED_BY = ("rakit.server", "rakit.cli", "rakit.__main__")

# (importer, imported): edges that still break a rule.
KNOWN: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / "rakit").rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if modules()[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


@cache
def imports_of(name: str) -> frozenset[tuple[str, str]]:
    """(module imported, name used from it or "") for every import of ``name``, at any depth."""
    found: set[tuple[str, str]] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update((alias.name, "") for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node)
                found.update((base, alias.name) for alias in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    visit([c for c in children if isinstance(c, ast.stmt | ast.ExceptHandler)])  # type: ignore[misc]
            if isinstance(node, ast.ExceptHandler):
                visit(node.body)

    visit(ast.parse(modules()[name].read_text()).body)
    return frozenset(found)


def rakit_edges(name: str) -> set[str]:
    """The rakit modules ``name`` imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    out = set()
    for base, item in imports_of(name):
        target = f"{base}.{item}" if f"{base}.{item}" in modules() else base
        if target in modules() and target != name:
            out.add(target)
    return out


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_pure_modules_import_no_io_clock_or_concurrency() -> None:
    problems = []
    pure = [m for m in modules() if _under(m, PURE_PREFIXES)]
    assert len(pure) > 20, pure  # the prefixes still name the modules
    for name in pure:
        for base, item in imports_of(name):
            top = base.split(".")[0]
            if top in IMPURE_MODULES:
                problems.append(f"{name} imports {base}")
            if top == "random" and item not in ("", "Random"):
                problems.append(f"{name} imports random.{item}")
        for target in rakit_edges(name):
            if not _under(target, PURE_PREFIXES) and target not in ("rakit", "rakit.errors"):
                problems.append(f"{name} imports {target}, which is not pure")
        tree = ast.parse(modules()[name].read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
                and node.attr != "Random"
            ):
                problems.append(f"{name} uses random.{node.attr} (take a seeded random.Random)")
    assert problems == []


def _edges() -> set[tuple[str, str]]:
    return {(m, t) for m in modules() for t in rakit_edges(m)}


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for a, b in _edges() - KNOWN:
        graph[a].add(b)
    # Tarjan's strongly connected components, iteratively.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    assert circles == []


def test_nothing_below_the_http_edge_imports_it() -> None:
    wrong = {
        (a, b)
        for a, b in _edges()
        if (_under(a, BELOW_HTTP) or _under(a, PURE_PREFIXES)) and _under(b, ("rakit.http",))
    }
    assert wrong - KNOWN == set()
    framework = {
        (a, base)
        for a in modules()
        if _under(a, BELOW_HTTP) or _under(a, PURE_PREFIXES)
        for base, _ in imports_of(a)
        if base.split(".")[0] == "starlette"
    }
    assert framework == set()


def test_the_process_layer_sits_above_the_http_edge() -> None:
    assert any(_under(m, SERVER) for m in modules())  # the prefix still names the package
    above = {(a, b) for a, b in _edges() if _under(a, SERVER) and _under(b, ("rakit.http", "rakit.node"))}
    assert above  # it builds the app and uses the node's budget: the rule is not vacuous
    wrong = {(a, b) for a, b in _edges() if _under(b, SERVER) and not _under(a, SERVER_MAY_BE_IMPORTED_BY)}
    assert wrong - KNOWN == set()
    node_up = {(a, b) for a, b in _edges() if _under(a, ("rakit.node",)) and _under(b, ("rakit.http", *SERVER))}
    assert node_up - KNOWN == set()


def test_the_client_imports_no_server_module() -> None:
    wrong = {(a, b) for a, b in _edges() if _under(a, ("rakit.client",)) and not _under(b, CLIENT_MAY_IMPORT)}
    assert wrong == set()


def test_every_known_exception_still_exists() -> None:
    """When an edge in ``KNOWN`` is cut, take it off the list."""
    assert KNOWN - _edges() == set()
