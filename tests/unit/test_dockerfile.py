"""Dockerfile.node: light static checks (no Docker engine is needed)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile.node").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_base_image_is_python_311_or_newer() -> None:
    froms = [rest for word, rest in instructions() if word == "FROM"]
    assert froms, "no FROM"
    match = re.match(r"python:(\d+)\.(\d+)", froms[0])
    assert match, froms[0]
    assert (int(match[1]), int(match[2])) >= (3, 11)


def test_installs_the_package() -> None:
    ins = instructions()
    copies = " ".join(rest for word, rest in ins if word == "COPY")
    assert "pyproject.toml" in copies and "src" in copies
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), runs
    # pyproject.toml names README.md as the readme: the build needs it in the context.
    if "README.md" in (ROOT / "pyproject.toml").read_text():
        assert "README.md" in copies


def test_cmd_runs_rakit_node() -> None:
    cmds = [rest for word, rest in instructions() if word == "CMD"]
    assert cmds, "no CMD"
    assert json.loads(cmds[-1]) == ["rakit", "node"]


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
    assert "src" not in ignored and "pyproject.toml" not in ignored
