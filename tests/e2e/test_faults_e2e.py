"""Real faults against the real stack. Each one asserts three things: the exit code is
non-zero (or the operation truly succeeded), the message names the cause and the fix, and
nothing was lost (the database's checksum) and no misleading file was left."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import FAULTS, Project, make_project, tear_down, up_seeded
from tests.e2e.vaultclient import Vault
from tests.keywriter import make_keyfile

pytestmark = pytest.mark.e2e

SIGNALS = [signal.SIGINT, signal.SIGTERM]


class Stack:
    def __init__(self, project: Project, vault: Vault):
        self.project = project
        self.vault = vault
        self.good_dump = Path()
        self.good_sql = Path()

    def files(self, folder: Path | None = None) -> set[str]:
        """Backup files and manifests (verification records are notes, not backups)."""
        return {n for n in self.project.backups(folder) if not n.endswith(".verify.json")}

    def snapshot(self) -> tuple[dict[str, str], set[str]]:
        return self.project.checksum(), self.files()

    def outcome(
        self,
        before: tuple[dict[str, str], set[str]],
        *,
        code: int,
        safe_codes: tuple[int, ...] = (1,),
    ) -> tuple[bool, int]:
        """Records the fault; returns (data intact, misleading files)."""
        intact = self.project.checksum() == before[0]
        extra = self.files() - before[1]
        misleading = len(
            [n for n in extra if not n.startswith("backup_") or n.endswith(".partial")]
        )
        FAULTS.record(safe=code in safe_codes and intact, lost=not intact, misleading=misleading)
        return intact, misleading

    def dbs_left(self) -> list[str]:
        return [d for d in self.project.databases() if "__" in d or d.startswith("recoverctl_")]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Stack]:
    project = make_project(tmp_path_factory.mktemp("faults"), "rctl-e2e-faults", docker_client)
    s = Stack(project, up_seeded(project))
    for fmt in ("custom", "sql"):
        made = project.run("backup", "--format", fmt, "--json")
        assert made.returncode == 0, made.stderr
        path = Path(json.loads(made.stdout)["result"]["path"])
        if fmt == "custom":
            s.good_dump = path
        else:
            s.good_sql = path
    yield s
    tear_down(project)


def spawn(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "RECOVERCTL_PROJECT_NAME": project.name,
            "RECOVERCTL_CONFIG": str(project.root / "recoverctl-config.toml"), **env}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "recoverctl", *args],
        cwd=project.root, env=full, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 120) -> None:
    """Reads stderr until text appears (a failpoint announcing itself)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if text in line:
            return
    raise AssertionError(f"never saw {text!r}; stderr so far:\n{seen}")


class TableLock:
    """Holds ACCESS EXCLUSIVE on vault_secret so a backup waits, mid-way, for the test."""

    def __init__(self, project: Project):
        self.project = project

    def __enter__(self) -> TableLock:
        self.project.container("db").exec_run(
            ["psql", "-U", "vault", "-d", "vault", "-c",
             "BEGIN; LOCK TABLE vault_secret IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"],
            detach=True,
        )  # fmt: skip
        for _ in range(100):
            if (
                self.project.sql(
                    "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                    "AND relation = 'vault_secret'::regclass"
                ).strip()
                == "1"
            ):
                return self
            time.sleep(0.1)
        raise AssertionError("could not take the table lock")

    def __exit__(self, *exc: object) -> None:
        # The db may have been killed on purpose: then there is no lock left to end.
        with contextlib.suppress(AssertionError, docker.errors.APIError):
            self.project.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()"
            )


def wait_for_partial(stack: Stack) -> None:
    for _ in range(200):
        if any(n.endswith(".partial") for n in stack.project.backups()):
            return
        time.sleep(0.05)
    raise AssertionError("the backup never started writing")


# --- the engine ----------------------------------------------------------------------------

ENGINE_COMMANDS = [
    ("up",), ("down",), ("ps",), ("logs",), ("restart",), ("backup",),
    ("verify", "latest"), ("restore", "latest", "--yes"), ("doctor", "--json"), ("recover",),
]  # fmt: skip


@pytest.mark.parametrize("argv", ENGINE_COMMANDS, ids=lambda a: " ".join(a))
def test_engine_unreachable(stack: Stack, tmp_path: Path, argv: tuple[str, ...]) -> None:
    before = stack.snapshot()
    result = stack.project.run(*argv, DOCKER_HOST=f"unix://{tmp_path}/gone.sock")
    stack.outcome(before, code=result.returncode)
    assert result.returncode == 1, result.stderr
    out = result.stdout + result.stderr
    assert f"Cannot reach the Docker engine at unix://{tmp_path}/gone.sock" in out
    assert "Start the Docker engine" in out
    assert "Traceback" not in out


# --- the db container ----------------------------------------------------------------------


def test_db_stopped_before_a_backup(stack: Stack) -> None:
    before = stack.snapshot()
    db = stack.project.container("db")
    db.stop(timeout=30)
    try:
        result = stack.project.run("backup")
        restore = stack.project.run("restore", str(stack.good_dump), "--yes")
    finally:
        db.start()
        stack.project.wait_healthy()
    stack.outcome(before, code=result.returncode)
    stack.outcome(before, code=restore.returncode)
    assert result.returncode == 1 and restore.returncode == 1
    for r in (result, restore):
        assert "error: Service db is not running (exited)." in r.stderr
        assert "hint: Start it: recoverctl up" in r.stderr


def test_db_killed_in_the_middle_of_a_backup(stack: Stack) -> None:
    before = stack.snapshot()
    with TableLock(stack.project):
        proc = spawn(stack.project, "backup")
        wait_for_partial(stack)
        stack.project.container("db").kill()
        _, err = proc.communicate(timeout=120)
    stack.project.container("db").start()
    stack.project.wait_healthy()
    stack.outcome(before, code=proc.returncode)
    assert proc.returncode == 1, err
    # Killed under pg_dump, under a query, or (on a loaded machine) between the partial
    # file's creation and pg_dump's start: each says so, and none leaves a backup.
    assert "error: " in err and (
        "pg_dump failed" in err
        or "query in the db container failed" in err
        or "refused to start pg_dump" in err
    )
    assert "no backup was written." in err


def test_db_killed_in_the_middle_of_a_restore(stack: Stack) -> None:
    before = stack.snapshot()
    proc = spawn(stack.project, "restore", str(stack.good_dump), "--yes", "--no-safety-backup",
                 RECOVERCTL_FAILPOINT="restore.before-swap", RECOVERCTL_FAILPOINT_SECONDS="10")  # fmt: skip
    wait_for(proc, "failpoint restore.before-swap reached")
    stack.project.container("db").kill()
    _, err = proc.communicate(timeout=120)
    stack.project.container("db").start()
    up = stack.project.run("up", "--no-build")
    assert up.returncode == 0, up.stderr
    assert proc.returncode == 1, err
    assert "vault still holds the previous data" in err
    assert "recoverctl up" in err
    plan = stack.project.run("restore", "latest", "--dry-run")
    assert "was left by an interrupted run" in plan.stdout + plan.stderr
    for name in stack.dbs_left():
        stack.project.sql(f'DROP DATABASE "{name}"', "postgres")
    stack.outcome(before, code=proc.returncode)


# --- pg_dump itself fails ------------------------------------------------------------------


def test_pg_dump_cannot_connect(stack: Stack) -> None:
    before = stack.snapshot()
    stack.project.sql("ALTER DATABASE vault ALLOW_CONNECTIONS false", "postgres")
    try:
        result = stack.project.run("backup")
    finally:
        stack.project.sql("ALTER DATABASE vault ALLOW_CONNECTIONS true", "postgres")
    stack.outcome(before, code=result.returncode)
    assert result.returncode == 1
    assert 'database "vault" is not currently accepting connections' in result.stderr
    assert "hint: Check `recoverctl logs db`." in result.stderr


def test_pg_dump_wrong_database(stack: Stack) -> None:
    stack.project.container("backend").stop(timeout=30)
    stack.project.sql("ALTER DATABASE vault RENAME TO vault_elsewhere", "postgres")
    try:
        files = stack.files()
        result = stack.project.run("backup")
    finally:
        stack.project.sql("ALTER DATABASE vault_elsewhere RENAME TO vault", "postgres")
        stack.project.container("backend").start()
        stack.project.wait_healthy()
    before = (stack.project.checksum(), files)
    stack.outcome(before, code=result.returncode)
    assert result.returncode == 1
    assert 'database "vault" does not exist' in result.stderr


def test_disk_full(stack: Stack, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)], check=False
    )
    assert mounted.returncode == 0, "e2e runs as root: it needs a small tmpfs for this fault"
    before = stack.snapshot()
    try:
        result = stack.project.run("backup", "--format", "sql", "--output-dir", str(small))
        left = os.listdir(small)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    stack.outcome(before, code=result.returncode)
    FAULTS.misleading += len(left)
    assert result.returncode == 1
    assert "error: Disk full while writing the backup" in result.stderr
    assert "hint: Free space there, or pass --output-dir" in result.stderr
    assert left == []


# --- signals -------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_signal_during_backup(stack: Stack, sig: signal.Signals) -> None:
    before = stack.snapshot()
    with TableLock(stack.project):
        proc = spawn(stack.project, "backup")
        wait_for_partial(stack)
        second = stack.project.run("backup")  # two backups at once
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    stack.outcome(before, code=proc.returncode, safe_codes=(128 + sig,))
    stack.outcome(before, code=second.returncode)
    assert (
        f"Another operation is running on {stack.project.name}: backup (pid {proc.pid})."
        in second.stderr
    )
    assert proc.returncode == 128 + sig, err
    assert "Backup interrupted; the partial file was removed and no backup was written." in err


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_signal_after_the_backup_was_written(stack: Stack, sig: signal.Signals) -> None:
    before = stack.snapshot()
    proc = spawn(stack.project, "backup", RECOVERCTL_FAILPOINT="backup.written")
    wait_for(proc, "failpoint backup.written reached")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    stack.outcome(before, code=proc.returncode, safe_codes=(128 + sig,))
    assert proc.returncode == 128 + sig, err
    assert "no backup was written" in err


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_signal_during_deep_verify(stack: Stack, sig: signal.Signals) -> None:
    before = stack.snapshot()
    proc = spawn(
        stack.project,
        "verify",
        str(stack.good_dump),
        "--deep",
        RECOVERCTL_FAILPOINT="verify.restored",
    )
    wait_for(proc, "failpoint verify.restored reached")
    assert any(d.startswith("recoverctl_verify") for d in stack.project.databases())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    stack.outcome(before, code=proc.returncode, safe_codes=(128 + sig,))
    assert proc.returncode == 128 + sig, err
    assert "Deep verification interrupted; its throwaway database was dropped." in err
    assert stack.dbs_left() == []


@pytest.mark.parametrize("point", ["restore.before-swap", "restore.swap", "restore.after-swap"])
@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_signal_during_restore(stack: Stack, sig: signal.Signals, point: str) -> None:
    stack.project.sql("UPDATE auth_user SET first_name = 'changed since the backup'")
    before = stack.snapshot()
    proc = spawn(stack.project, "restore", str(stack.good_dump), "--yes", "--no-safety-backup",
                 RECOVERCTL_FAILPOINT=point)  # fmt: skip
    wait_for(proc, f"failpoint {point} reached")
    if point == "restore.before-swap":
        during = stack.project.run("backup")  # a backup during a restore waits its turn
        assert during.returncode == 1
        assert (
            f"Another operation is running on {stack.project.name}: restore (pid {proc.pid})."
            in during.stderr
        )
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=180)
    stack.project.wait_healthy()
    stack.outcome(before, code=proc.returncode, safe_codes=(128 + sig,))
    assert proc.returncode == 128 + sig, err
    assert "Restore interrupted." in err
    expected = (
        "Nothing was changed"
        if point == "restore.before-swap"
        else "The previous database is serving again"
    )
    assert expected in err
    assert stack.project.checksum() == before[0]
    assert stack.dbs_left() == []


# --- bad inputs ----------------------------------------------------------------------------


def bad_inputs(stack: Stack, tmp: Path) -> dict[str, tuple[Path, str]]:
    good = stack.good_sql.read_bytes()
    cases: dict[str, tuple[Path, str]] = {}

    def put(name: str, data: bytes, message: str) -> Path:
        path = tmp / name
        path.write_bytes(data)
        cases[name] = (path, message)
        return path

    put("empty.dump", b"", "is empty")
    put("truncated.sql", good[: len(good) // 2], "the file is truncated")
    put("notes.dump", b"just some notes\n" * 100, "not a PostgreSQL dump")
    custom = stack.good_dump.read_bytes()
    put("cut.dump", custom[:-200], "pg_restore reading the data")
    flipped = bytearray(custom)
    flipped[len(flipped) // 2] ^= 0xFF
    shutil.copy(
        stack.good_dump.with_name(stack.good_dump.name + ".json"), tmp / "flipped.dump.json"
    )
    put("flipped.dump", bytes(flipped), "differ from the manifest's")
    shutil.copy(stack.good_sql.with_name(stack.good_sql.name + ".json"), tmp / "other.dump.json")
    put("other.dump", custom, "differ from the manifest's")
    newer = re.sub(
        rb"Dumped by pg_dump version [^\n]+", b"Dumped by pg_dump version 17.2", good, count=1
    )
    put("newer.sql", newer, "made by pg_dump 17.2")
    return cases


def test_bad_inputs_are_refused_by_verify_and_restore(stack: Stack, tmp_path: Path) -> None:
    for name, (path, message) in bad_inputs(stack, tmp_path).items():
        before = stack.snapshot()
        verify = stack.project.run("verify", str(path), "--json")
        assert verify.stdout, (name, verify.stderr)
        report = json.loads(verify.stdout)["result"]
        failed = [c for c in report["checks"] if c["status"] == "fail"]
        restore = stack.project.run("restore", str(path), "--yes")
        stack.outcome(before, code=verify.returncode)
        stack.outcome(before, code=restore.returncode)
        assert verify.returncode == 1, name
        assert any(message in c["evidence"] for c in failed), (name, failed)
        assert all(c["fix"] for c in failed), name
        assert restore.returncode == 1, name
        # Refused before the load (quick checks) or during it (the hash): either way,
        # said once, and nothing changed.
        assert "error: Refusing to restore" in restore.stderr, (name, restore.stderr)
        assert restore.stderr.count("Nothing was changed") == 1, (name, restore.stderr)


def test_missing_file(stack: Stack) -> None:
    before = stack.snapshot()
    result = stack.project.run("restore", "backups/nope.dump", "--yes")
    stack.outcome(before, code=result.returncode, safe_codes=(2,))
    assert result.returncode == 2
    assert "error: No backup at backups/nope.dump." in result.stderr


def test_a_path_with_spaces_and_shell_metacharacters(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "my backups; $(touch pwned)"
    folder.mkdir()
    odd = folder / "b `touch pwned2` & 'x'.dump"
    shutil.copy(stack.good_dump, odd)
    shutil.copy(
        stack.good_dump.with_name(stack.good_dump.name + ".json"), odd.with_name(odd.name + ".json")
    )
    before = stack.snapshot()
    result = stack.project.run("verify", str(odd), "--deep")
    stack.outcome(before, code=result.returncode, safe_codes=(0,))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(Path(stack.project.root).glob("pwned*")) and not list(tmp_path.glob("pwned*"))


def test_symlink_out_of_the_backups_folder(stack: Stack, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.dump"
    shutil.copy(stack.good_dump, outside)
    link = stack.project.root / "backups" / "backup_2001-01-01_000000.dump"
    link.symlink_to(outside)
    try:
        before = stack.snapshot()
        result = stack.project.run("restore", str(link), "--yes")
        stack.outcome(before, code=result.returncode)
    finally:
        link.unlink()
    assert result.returncode == 1
    assert (
        "is a symlink to" in result.stderr
        and "outside its folder; refusing to follow it" in result.stderr
    )
    assert "hint: Pass the real file's path if you trust it." in result.stderr


# --- env and key files ---------------------------------------------------------------------


ENV_FAULTS = {
    "malformed": ("this line is not an assignment\n", "env.syntax"),
    "duplicate": ("POSTGRES_DB=other\n", "env.duplicates"),
    "placeholder": ("DJANGO_SECRET_KEY=change-me-django-secret-key\n", "env.placeholders"),
}


@pytest.mark.parametrize("fault", [*ENV_FAULTS, "crlf"])
def test_env_file_faults(stack: Stack, fault: str) -> None:
    env = stack.project.root / ".env.production"
    text = (
        (stack.project.root / ".env").read_text().replace("DJANGO_DEBUG=true", "DJANGO_DEBUG=false")
    )
    if fault == "crlf":
        text, check = text.replace("\n", "\r\n"), "env.line_endings"
    else:
        extra, check = ENV_FAULTS[fault]
        text += extra
    env.write_text(text)
    env.chmod(0o600)
    try:
        before = stack.snapshot()
        result = stack.project.run("doctor", "--prod", "--only", "env", "--json")
        stack.outcome(before, code=result.returncode)
    finally:
        env.unlink()
    statuses = {c["name"]: c for c in json.loads(result.stdout)["result"]["checks"]}
    assert result.returncode == 1
    assert statuses[check]["status"] in ("fail", "warn"), statuses[check]
    assert any(c["status"] == "fail" for c in statuses.values())
    assert "change-me-django" not in result.stdout


def test_key_file_faults(stack: Stack, tmp_path: Path) -> None:
    good = make_keyfile(stack.vault.alice_key, "right passphrase", iterations=100_000)
    cases = {
        "wrong passphrase": (good, "not-the-passphrase-7x", "wrong passphrase or damaged key file"),
        "damaged field": ({**good, "wrappedKey": good["wrappedKey"][:-8] + "AAAAAAA="}, "right passphrase", "wrong passphrase or damaged key file"),
        "mismatched fingerprint": ({**good, "fingerprint": "sha256:" + "0" * 64}, "right passphrase", "fingerprint"),
        "low iterations": ({**good, "kdf": {**good["kdf"], "iterations": 1000}}, "right passphrase", "1000"),
    }  # fmt: skip
    for name, (data, passphrase, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.zkkey.json"
        path.write_text(json.dumps(data))
        path.chmod(0o600)
        before = stack.snapshot()
        result = stack.project.run(
            "keys", "check", str(path), "--passphrase-stdin", input=passphrase + "\n"
        )
        stack.outcome(before, code=result.returncode)
        assert result.returncode == 1, name
        assert message in result.stderr, (name, result.stderr)
        assert passphrase not in result.stderr
        assert "hint: " in result.stderr


# --- the app holds connections -------------------------------------------------------------


def test_restore_ends_connections_held_open(stack: Stack) -> None:
    stack.project.container("db").exec_run(
        ["psql", "-U", "vault", "-d", "vault", "-c", "SELECT pg_sleep(120)"], detach=True
    )
    time.sleep(1)
    result = stack.project.run("restore", str(stack.good_dump), "--yes", "--no-safety-backup")
    FAULTS.record(safe=result.returncode == 0)
    assert result.returncode == 0, result.stderr
    held = stack.project.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()"
    )
    assert held.strip() == "0"
    assert stack.vault.alice_reads() == stack.vault.alice_secrets


# --- security ------------------------------------------------------------------------------


def _argv_watch(stop: threading.Event, seen: set[str]) -> None:
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                with contextlib.suppress(OSError):
                    seen.add(
                        Path(f"/proc/{pid}/cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode("utf-8", "replace")
                    )
        time.sleep(0.01)


def test_no_secret_in_any_argv_or_output(stack: Stack, tmp_path: Path) -> None:
    secrets_ = [
        stack.project.env["POSTGRES_PASSWORD"],
        stack.project.env["DJANGO_SECRET_KEY"],
        "kept-out-of-argv",
    ]
    key = tmp_path / "k.zkkey.json"
    key.write_text(
        json.dumps(make_keyfile(stack.vault.alice_key, "kept-out-of-argv", iterations=100_000))
    )
    key.chmod(0o600)
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_argv_watch, args=(stop, seen), daemon=True)
    watcher.start()
    try:
        outputs = [
            stack.project.run("backup"),
            stack.project.run("verify", "latest", "--deep"),
            stack.project.run("restore", "latest", "--yes"),
            stack.project.run(
                "keys", "check", str(key), "--passphrase-stdin", input="kept-out-of-argv\n"
            ),
            stack.project.run("doctor"),
        ]
    finally:
        stop.set()
        watcher.join()
    assert any("pg_dump" in cmd for cmd in seen) and any("pg_restore" in cmd for cmd in seen)
    for secret in secrets_:
        assert not [cmd for cmd in seen if secret in cmd]
        for out in outputs:
            assert secret not in out.stdout + out.stderr
    # Files: backups, manifests and records 0600 in a 0700 folder; no partial left.
    folder = stack.project.root / "backups"
    assert folder.stat().st_mode & 0o777 == 0o700
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
        assert not path.name.endswith(".partial")
