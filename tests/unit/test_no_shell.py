"""Nothing recoverctl executes goes through a shell: argv lists only, never shell=True."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "recoverctl"
SHELLS = {"sh", "bash", "/bin/sh", "/bin/bash", "zsh", "dash"}


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
        for node in ast.walk(tree):
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
