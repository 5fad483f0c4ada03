"""The recoverctl commands playbook.md shows, so tests can hold the page to the tool."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

PLAYBOOK = Path(__file__).resolve().parents[1] / "playbook.md"
_FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)
_INLINE = re.compile(r"`(recoverctl [^`]+)`")


def playbook_commands(text: str | None = None) -> list[tuple[str, ...]]:
    """Every `recoverctl …` invocation in sh code blocks and inline code, as argv tails."""
    text = PLAYBOOK.read_text() if text is None else text
    found: list[str] = []
    for lang, body in _FENCE.findall(text):
        if lang == "sh":
            found += [
                line.strip() for line in body.splitlines() if line.strip().startswith("recoverctl ")
            ]
    outside = _FENCE.sub("", text)
    for span in _INLINE.findall(outside):
        found += [part.strip() for part in span.split("&&")]
    commands: list[tuple[str, ...]] = []
    for line in found:
        argv = tuple(shlex.split(line)[1:])
        if argv and argv not in commands:
            commands.append(argv)
    return commands


def is_offsite(argv: tuple[str, ...]) -> bool:
    """An off-site command: tests/e2e/test_offsite_e2e.py runs these, against real servers."""
    return (
        argv[:1] in (("push",), ("pull",))
        or argv[:2] in (("env", "push"), ("env", "pull"))
        or argv[:2] == ("keys", "new-identity")
        or "--target" in argv
        or argv[:3] == ("doctor", "--only", "targets")
    )


def is_upgrade(argv: tuple[str, ...]) -> bool:
    """A major upgrade's command: tests/e2e/test_upgrade_e2e.py runs these, on a 15 stack."""
    return argv[:1] == ("upgrade-postgres",)
