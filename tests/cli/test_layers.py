"""docs/source-code.md: the CLI imports actions, rendering and its own helpers, never the
layers below. Only the crash handler and options (which build the settings and the
session) reach services/ and settings; render names the stack status it draws and writes
results through the one serialiser. cli/contract.py describes every layer's results for
other programs and the tests: nothing in recoverctl imports it at run time."""

from __future__ import annotations

import ast
from pathlib import Path

import recoverctl.cli

CLI = Path(recoverctl.cli.__file__).parent
BELOW = ("recoverctl.services", "recoverctl.adapters", "recoverctl.core", "recoverctl.settings")
ALLOWED = {
    "crash.py": {
        "recoverctl.adapters.process",
        "recoverctl.services.session",
        "recoverctl.settings",
    },
    "options.py": {"recoverctl.services.session", "recoverctl.settings"},
    "render.py": {"recoverctl.core.stack", "recoverctl.core.result"},
}
SCHEMA_ONLY = "contract.py"


def imported(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_the_cli_imports_nothing_below_the_actions() -> None:
    for path in sorted(CLI.glob("*.py")):
        if path.name == SCHEMA_ONLY:
            continue
        below = {m for m in imported(path.read_text()) if m.startswith(BELOW)}
        assert below <= ALLOWED.get(path.name, set()), path.name


def test_nothing_imports_the_contract_at_run_time() -> None:
    for path in sorted(CLI.parent.rglob("*.py")):
        if path.name != SCHEMA_ONLY:
            source = path.read_text()
            named = {
                f"{node.module}.{a.name}"
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom)
                for a in node.names
            }
            assert "recoverctl.cli.contract" not in imported(source) | named, path


def test_every_command_has_its_module() -> None:
    # restic's cmd_*.go: a command's code is in the file named after it.
    from typer.main import get_command

    from recoverctl.cli.app import app

    root = get_command(app)
    names = set(root.commands)  # type: ignore[attr-defined]
    stacked = {"up", "down", "ps", "logs", "restart"}  # the stack's commands share stack.py
    modules = {n: n.replace("-", "_") for n in names}  # upgrade-postgres: upgrade_postgres.py
    assert {n for n in names - stacked if not (CLI / f"{modules[n]}.py").is_file()} == set()
