"""The commands a person runs on a server whose files went odd: garbage in backups/, a
tampered folder target, bad settings and env files. Whatever the files hold, each command
ends with a status from the documented table, never a traceback, never a planted secret
in its output or its log. RECOVERCTL_FUZZ_EXAMPLES runs more cases."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from recoverctl.cli.app import app
from tests.fuzz import FUZZ, json_mutated, mutated
from tests.unit.test_readers_properties import MANIFEST, REMOTE

SECRET = "planted-secret-6b1f0e"
DOCUMENTED = {0, 1, 2, 3}
NAMES = [
    "backup_2026-05-01_030000.dump", "backup_2026-05-02_030000.sql",
    "backup_2026-02-30_120000.dump", "backup_\u0662\u0660\u0662\u0666-05-01_030000.dump",
    "backup_2026-05-01_030000 (copy).dump", "backup_2026-05-01_030000.dump\n",
    "backup_2026-05-03_030000.sql.gz", "backup_0001-01-01_000000.sql", "notes.txt",
    "backup_2026-05-04_030000.dump.partial",
]  # fmt: skip
KINDS = ["file", "dangling", "loop", "folder"]


def _entry(folder: Path, name: str, kind: str, data: bytes) -> None:
    path = folder / name
    if kind == "file":
        path.write_bytes(data)
        path.with_name(name + ".json").write_bytes(data[: len(data) // 2] or b"{}")
    elif kind == "dangling":
        path.symlink_to("/nonexistent/unmounted/disk/" + name.replace("/", "_"))
    elif kind == "loop":
        path.symlink_to(path.name)
    else:
        path.mkdir()


scenario = st.fixed_dictionaries(
    {
        "entries": st.lists(
            st.tuples(
                st.sampled_from(NAMES),
                st.sampled_from(KINDS),
                st.one_of(json_mutated(MANIFEST), st.binary(max_size=300)),
            ),
            max_size=5,
            unique_by=lambda e: e[0],
        ),
        "remote": st.lists(
            st.tuples(st.sampled_from([*NAMES, "x (copy).manifest.json"]), json_mutated(REMOTE)),
            max_size=3,
            unique_by=lambda e: e[0],
        ),
        "settings": mutated(b'[recoverctl]\nrpo = "24h"\ndeep_every = "1d"\n'),
        "env": mutated(
            f"POSTGRES_PASSWORD={SECRET}\nDJANGO_CSRF_TRUSTED_ORIGINS=http://[::1:8000\n"
            'MULTI="a\nb"\n'.encode()
        ),
    }
)
COMMANDS = [
    ["list"], ["list", "--json"], ["prune", "--dry-run"], ["doctor", "--json"],
    ["list", "--target", "nas"], ["verify", "latest"], ["restore", "latest", "--dry-run"],
]  # fmt: skip


@FUZZ
@given(scenario, st.sampled_from(COMMANDS))
def test_no_file_makes_a_command_crash_or_leak(
    runner: CliRunner, project: Path, case: dict[str, Any], command: list[str]
) -> None:
    backups = project / "backups"
    for folder in (backups, project / "nas"):
        if folder.exists():
            for p in folder.rglob("*"):
                if p.is_symlink() or p.is_file():
                    p.unlink()
            for p in sorted(folder.rglob("*"), reverse=True):
                p.rmdir()
    backups.mkdir(mode=0o700, exist_ok=True)
    for name, kind, data in case["entries"]:
        _entry(backups, name, kind, data)
    nas = project / "nas" / "vault-dev" / "dev"
    nas.mkdir(parents=True, exist_ok=True)
    for name, data in case["remote"]:
        (nas / name).write_bytes(data)
    target = f'\n[targets.nas]\ntype = "dir"\npath = "{project / "nas"}"\nencryption = "none"\n'
    (project / "config.toml").write_bytes(case["settings"] + target.encode())
    (project / ".env").write_bytes(case["env"])
    os.chmod(project / ".env", 0o600)
    log = project / "run.log"
    result = runner.invoke(app, ["--log-file", str(log), *command])
    shown = result.output + (log.read_text(errors="replace") if log.exists() else "")
    assert result.exit_code in DOCUMENTED, (command, result.output)
    assert "Traceback" not in shown and "internal error" not in shown, (command, shown)
    assert SECRET not in shown
    if "--json" in command:
        document = json.loads(result.stdout)
        assert document["exit_code"] == result.exit_code


@pytest.mark.parametrize(
    "name", ["backup_2026-02-30_120000.dump", "backup_2026-05-01_030000 (copy).dump"]
)
def test_a_stray_named_like_a_backup_is_skipped_and_named(
    runner: CliRunner, project: Path, name: str
) -> None:
    backups = project / "backups"
    backups.mkdir(mode=0o700)
    (backups / name).write_bytes(b"x")
    (backups / "backup_2026-05-01_040000.dump").symlink_to("/nonexistent/disk/b.dump")
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert name in result.output and "skipped" in result.output
    assert "backup_2026-05-01_040000.dump: a symlink that leads to no file" in result.output
