"""The rooms and their arrows (docs/architecture.md): each room imports only the rooms below it, never a peer.

Read from the source with `ast`, so a lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: room → source folder
ROOMS = {
    "core": "redline",
    "lsp_server": "lsp_server",
    "ci_hook": "ci_hook",
    "trainer": "trainer",
    "export": "export",
    "serve": "serve",
    "daemon": "daemon",
}
#: what each room may import besides itself; the CLI (`redline/cli/`) is the composition root and may import all
ALLOWED = {
    "core": set(),
    "lsp_server": {"core"},
    "ci_hook": {"core"},
    "trainer": {"core"},
    "export": {"core"},
    # serving runs the model the trainer trained (`trainer.model`) and loads exported adapters into vLLM
    "serve": {"core", "trainer", "export"},
    # the daemon runs training in its child process and asks a running server to yield the GPU
    "daemon": {"core", "trainer", "serve"},
}


def room_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "redline":
        return None
    if len(parts) > 1 and parts[1] in ROOMS and parts[1] != "core":
        return parts[1]
    if len(parts) > 1 and parts[1] == "cli":
        return "cli"
    return "core"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def sources(room: str) -> list[Path]:
    folder = ROOT / ROOMS[room]
    files = sorted(folder.rglob("*.py"))
    if room == "core":  # the CLI and `python -m redline` are the composition root
        files = [f for f in files if "cli" not in f.relative_to(folder).parts and f.name != "__main__.py"]
    return files


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_room_imports_only_the_rooms_below_it(room: str) -> None:
    wrong = []
    for path in sources(room):
        for module in sorted(imports(path)):
            target = room_of(module)
            if target is not None and target != room and target not in ALLOWED[room]:
                wrong.append(f"{path.relative_to(ROOT)} imports {module} ({room} → {target})")
    assert not wrong, "\n".join(wrong)


def test_every_room_is_checked() -> None:
    """A new top-level package must be given its place in the layers here."""
    import tomllib

    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    assert {name.split(".")[1] for name in mapping} <= set(ROOMS)
