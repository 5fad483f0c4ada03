"""Nothing recoverctl executes goes through a shell: argv lists only, never shell=True.

One exception, inside the db container: pg.pg_restore_counted pipes pg_restore into psql
(its COPY tags are the row counts of a restore and of a deep verification, without a scan
of every table afterwards), a line built
from fixed words and shlex-quoted names, checked word for word in test_pg.py. A pipe relayed
through recoverctl instead would carry every row through this process.

And one for the major upgrade, inside the new cluster's container: upgrade.transfer_script
pipes the new version's pg_dumpall and pg_dump (reading the live server over the stack's
network) into its psql and pg_restore, from fixed words and shlex-quoted names, checked in
test_upgrade_core.py: the whole database crosses inside the engine, not through recoverctl."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "recoverctl"
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "zsh", "dash"}
# (file, function) allowed to build a shell line; see the docstring.
ALLOWED = {("pg.py", "pg_restore_counted"), ("upgrade.py", "transfer_script")}


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_no_shell_anywhere_in_the_source() -> None:
    offenders: list[str] = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for call in _calls(tree):
            name = ast.unparse(call.func)
            if name in {
                "os.system",
                "os.popen",
                "subprocess.getoutput",
                "subprocess.getstatusoutput",
            }:
                offenders.append(f"{path.name}:{call.lineno} {name}")
            for kw in call.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    offenders.append(f"{path.name}:{call.lineno} shell=")
        # No argv built here starts with a shell: a tuple or list literal whose first item
        # is "sh" would be a shell command line, however it is run.
        allowed = {
            id(node)
            for func in ast.walk(tree)
            if isinstance(func, ast.FunctionDef) and (path.name, func.name) in ALLOWED
            for node in ast.walk(func)
        }
        for node in ast.walk(tree):
            if id(node) in allowed:
                continue
            if isinstance(node, (ast.Tuple, ast.List)) and node.elts:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value in SHELLS:
                    offenders.append(f"{path.name}:{node.lineno} argv starts with {first.value}")
    assert offenders == []


def test_the_scan_would_see_a_shell() -> None:
    tree = ast.parse('subprocess.run("x", shell=True)\nargv = ("sh", "-c", "x")\n')
    assert any(kw.arg == "shell" for c in _calls(tree) for kw in c.keywords)
    tuples = [n for n in ast.walk(tree) if isinstance(n, ast.Tuple)]
    assert isinstance(tuples[0].elts[0], ast.Constant) and tuples[0].elts[0].value in SHELLS


def test_the_one_shell_line_is_where_it_is_allowed() -> None:
    """The exception stays one: if pg_restore_counted moved or stopped using sh, this list
    would be stale (and the scan above would say where the shell went)."""
    tree = ast.parse((SRC / "core" / "pg.py").read_text())
    (func,) = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name == "pg_restore_counted"
    ]
    shells = [
        n for n in ast.walk(func)
        if isinstance(n, ast.Tuple) and n.elts and isinstance(n.elts[0], ast.Constant)
        and n.elts[0].value in SHELLS
    ]  # fmt: skip
    assert len(shells) == 1
