"""doctor's pitr group: its judges on pgBackRest's and the server's reports, and the group
run over the fakes, with the db container's pgBackRest and archiver answered here."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recoverctl.adapters.pgexec import ExecResult
from recoverctl.core import pitr
from recoverctl.core.checks import FAIL, OK, WARN
from recoverctl.core.commands import Argv
from recoverctl.services import doctor
from recoverctl.services.doctor import pitr as checks
from recoverctl.settings import DirTargetSettings, PitrSettings
from tests.unit.fakes import PROJECT, FakeStack, app_tables, make_stack

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
WAL = "0000000100000000000000{:02X}"
DAY = timedelta(days=1)
MIB = 1024 * 1024
PASSPHRASE = "PGBACKREST_CIPHER_PASSWORD=" + "a1" * 24 + "\n"


def archiver(
    *,
    archived_ago: timedelta | None = timedelta(seconds=10),
    failed_ago: timedelta | None = None,
    ready: int = 0,
    pg_wal: int = 48 * MIB,
    mode: str = "on",
    now: datetime = NOW,
) -> pitr.Archiver:
    return pitr.Archiver(
        last_archived_wal=WAL.format(5) if archived_ago is not None else None,
        last_archived_at=now - archived_ago if archived_ago is not None else None,
        failed_count=3 if failed_ago is not None else 0,
        last_failed_wal=WAL.format(6) if failed_ago is not None else None,
        last_failed_at=now - failed_ago if failed_ago is not None else None,
        current_wal=WAL.format(6 + ready),
        ready=ready,
        pg_wal_bytes=pg_wal,
        archive_mode=mode,
        now=now,
    )


def base(label: str, kind: str, stopped: datetime, error: bool = False) -> pitr.BaseBackup:
    return pitr.BaseBackup(
        label, kind, 1, stopped - timedelta(minutes=1), stopped, "", "", 1, 1, error
    )


def held(*backups: pitr.BaseBackup, status: int = 0, cipher: str = "aes-256-cbc") -> pitr.RepoInfo:
    message = {0: "ok", 2: "no valid backups", 99: "other"}[status]
    return pitr.RepoInfo(1, status, message, backups, WAL.format(1), WAL.format(5), cipher)


TIMEOUT, IO = timedelta(seconds=60), timedelta(seconds=20)


# --- the judges --------------------------------------------------------------------------


def test_archiving_ok_names_the_archived_and_the_current_segment() -> None:
    found = checks.archiving_check(archiver(), TIMEOUT, IO)
    assert found.status == OK
    assert f"last archived {WAL.format(5)}, current {WAL.format(6)}" in found.evidence
    # A failure older than the last success is over: archiving works again.
    again = checks.archiving_check(
        archiver(archived_ago=timedelta(seconds=5), failed_ago=timedelta(minutes=5)),
        TIMEOUT,
        IO,
    )
    assert again.status == OK


def test_archiving_fails_with_the_last_failure_time_and_what_to_do() -> None:
    found = checks.archiving_check(
        archiver(archived_ago=timedelta(minutes=10), failed_ago=timedelta(seconds=3), ready=2),
        TIMEOUT,
        IO,
        " --prod",
    )
    assert found.status == FAIL
    assert "failed at 2026-12-02 11:59 UTC, 3 s ago" in found.evidence
    assert "last success 10.0 min ago" in found.evidence and "2 segment(s)" in found.evidence
    assert "recoverctl logs db" in found.fix and "pitr status --prod" in found.fix
    never = checks.archiving_check(archiver(archived_ago=None, failed_ago=DAY), TIMEOUT, IO)
    assert never.status == FAIL and "never succeeded" in never.evidence


def test_archiving_behind_past_archive_timeout_and_its_margin_fails() -> None:
    limit = checks.allowed_lag(TIMEOUT, IO)
    assert limit > TIMEOUT + IO
    within = archiver(archived_ago=limit - timedelta(seconds=1), ready=1)
    assert checks.archiving_check(within, TIMEOUT, IO).status == OK
    behind = archiver(archived_ago=limit + timedelta(seconds=1), ready=1)
    found = checks.archiving_check(behind, TIMEOUT, IO)
    assert found.status == FAIL and "behind" in found.evidence
    # Nothing waiting is no lag, however long ago the last segment went.
    idle = archiver(archived_ago=DAY, ready=0)
    assert checks.archiving_check(idle, TIMEOUT, IO).status == OK


def test_archiving_off_or_never_yet() -> None:
    off = checks.archiving_check(archiver(mode="off"), TIMEOUT, IO)
    assert off.status == FAIL and "archive_mode=off" in off.evidence
    assert checks.archiving_check(archiver(archived_ago=None), TIMEOUT, IO).status == WARN
    assert checks.enabled_check("off").status == FAIL
    assert checks.enabled_check("on").status == OK


def test_rpo_is_the_archive_lag() -> None:
    rpo = timedelta(minutes=15)
    assert checks.rpo_check(archiver(ready=1), rpo, TIMEOUT).status == OK
    late = checks.rpo_check(archiver(archived_ago=timedelta(minutes=20), ready=1), rpo, TIMEOUT)
    assert late.status == FAIL and "20.0 min" in late.evidence
    slow = checks.rpo_check(archiver(), timedelta(seconds=30), TIMEOUT)
    assert slow.status == WARN and "archive_timeout" in slow.evidence


def test_pg_wal_is_bounded_by_wal_max() -> None:
    assert checks.pg_wal_check(archiver(pg_wal=100 * MIB), 1024).status == OK
    assert checks.pg_wal_check(archiver(pg_wal=513 * MIB), 1024).status == WARN
    full = checks.pg_wal_check(archiver(pg_wal=1024 * MIB), 1024)
    assert full.status == FAIL and "1024 MiB of the 1024 MiB" in full.evidence


def test_repos_reachable_encrypted_and_supported() -> None:
    folder = pitr.dir_repo(1, "nas", "/srv/nas", PROJECT, "dev")
    ok = checks.repo_check(folder, held(base("F", "full", NOW)), "aes-256-cbc", (2, 45))
    assert ok.status == OK
    assert "aes-256-cbc" in ok.evidence and "pgBackRest 2.45: posix, s3; sftp from 2.46" in (
        ok.evidence
    )
    # The stanza's cipher stands in where a repository reports none of its own.
    legacy = held(base("F", "full", NOW), cipher="")
    assert checks.repo_check(folder, legacy, "aes-256-cbc", (2, 45)).status == OK
    clear = checks.repo_check(folder, held(cipher="none"), "none", (2, 45))
    assert clear.status == FAIL and "not encrypted" in clear.evidence
    broken = checks.repo_check(folder, held(status=99), "aes-256-cbc", (2, 45))
    assert broken.status == FAIL and "other (pgBackRest status 99)" in broken.evidence
    empty = checks.repo_check(folder, held(status=2), "aes-256-cbc", (2, 45))
    assert empty.status == WARN and "--type full" in empty.fix
    unknown = checks.repo_check(folder, None, "aes-256-cbc", (2, 45))
    assert unknown.status == FAIL and "pitr enable" in unknown.fix
    sftp = pitr.sftp_repo(
        2, "far", host="h", port=22, user="u", path="/b", project=PROJECT, stack="dev"
    )
    too_old = checks.repo_check(sftp, held(), "aes-256-cbc", (2, 45))
    assert too_old.status == FAIL and "sftp" in too_old.evidence
    assert checks.repo_check(sftp, held(), "aes-256-cbc", (2, 46)).status == OK
    assert "posix, s3, sftp" in checks.supported_kinds((2, 54))


def test_base_backup_is_due_at_full_every_and_diff_every() -> None:
    week = timedelta(days=7)
    fresh = held(base("F", "full", NOW - 2 * DAY), base("D", "diff", NOW - timedelta(hours=3)))
    ok = checks.base_backup_check(fresh, NOW, week, DAY)
    assert ok is not None and ok.status == OK and "newest diff 3.0 h old" in ok.evidence
    no_diff = held(base("F", "full", NOW - 2 * DAY))
    found = checks.base_backup_check(no_diff, NOW, week, DAY)
    assert found is not None and found.status == WARN and "--type diff" in found.fix
    assert checks.base_backup_check(no_diff, NOW, week, None) == replace(
        found, status=OK, evidence="newest full F 2.0 d old", fix=""
    )
    late = checks.base_backup_check(held(base("F", "full", NOW - 8 * DAY)), NOW, week, None)
    assert late is not None and late.status == WARN and "over full_every 7.0 d" in late.evidence
    missed = checks.base_backup_check(held(base("F", "full", NOW - 15 * DAY)), NOW, week, None)
    assert missed is not None and missed.status == FAIL
    # A failed backup is none: the one before it is judged.
    failed = held(base("F", "full", NOW - 15 * DAY), base("G", "full", NOW, error=True))
    assert (checks.base_backup_check(failed, NOW, week, None) or missed).status == FAIL
    none = checks.base_backup_check(held(status=2), NOW, week, None)
    assert none is not None and none.status == FAIL and "--type full" in none.fix
    assert checks.base_backup_check(None, NOW, week, None) is None


def test_window_reaches_back_as_retention_promises() -> None:
    week = timedelta(days=7)
    complete = held(base("F1", "full", NOW - 8 * DAY), base("F2", "full", NOW - DAY))
    ok = checks.window_check(complete, NOW, week, 2)
    assert ok is not None and ok.status == OK and "retention promises 7.0 d" in ok.evidence
    # Just after enable: a warning that says when the window is complete.
    young = held(base("F1", "full", NOW - 2 * DAY))
    warn = checks.window_check(young, NOW, week, 2)
    assert warn is not None and warn.status == WARN
    assert "complete around 2026-12-07 12:00 UTC" in warn.evidence
    # Roughly: an hour short is no broken promise; keep_full = 1 promises only the last full.
    nearly = held(base("F1", "full", NOW - week + timedelta(minutes=30)))
    assert (checks.window_check(nearly, NOW, week, 2) or warn).status == OK
    assert (checks.window_check(young, NOW, week, 1) or warn).status == OK
    assert checks.window_check(held(status=2), NOW, week, 2) is None


def test_a_gap_in_the_archive_fails_the_window_until_a_full_backup_closes_it() -> None:
    week = timedelta(days=7)
    complete = held(base("F1", "full", NOW - 8 * DAY), base("F2", "full", NOW - DAY))
    hole = pitr.Gap(WAL.format(7), WAL.format(9), 3, None)
    found = checks.window_check(complete, NOW, week, 2, (hole,))
    assert found is not None and found.status == FAIL
    assert f"WAL {WAL.format(7)} to {WAL.format(9)} (3 segments) is missing" in found.evidence
    assert "recoverctl pitr backup --type full" in found.fix
    closed = checks.window_check(complete, NOW, week, 2, (replace(hole, closed_by="F3"),))
    assert closed is not None and closed.status == WARN
    assert "between it and base backup F3 are out of reach" in closed.evidence
    # An archive that cannot be listed: its gaps are not known, and the check says so.
    unknown = checks.window_check(complete, NOW, week, 2, None)
    assert unknown is not None and unknown.status == WARN
    assert "could not be listed" in unknown.evidence and "gaps not checked" in unknown.evidence


def test_passphrase_off_site_means_its_fingerprint_on_every_target() -> None:
    data = PASSPHRASE.encode()
    mine = {"env:.env.pitr": hashlib.sha256(data).hexdigest()}
    state = "mode 0o600, ignored by git"
    ok = checks.offsite_check(".env.pitr", state, data, ["a", "b"], {"a": mine, "b": mine})
    assert ok.status == OK and "off-site on a, b" in ok.evidence
    stale = {"env:.env.pitr": "0" * 64}
    found = checks.offsite_check(".env.pitr", state, data, ["a", "b", "c"], {"a": mine, "b": stale})
    assert (
        found.status == FAIL and "b: another one" in found.evidence and "c: none" in found.evidence
    )
    assert found.fix == "recoverctl env push"


def test_spans_read_as_doctor_says_them() -> None:
    assert [checks.span(timedelta(seconds=s)) for s in (3, 300, 3 * 3600, 3 * 86400)] == [
        "3 s",
        "5.0 min",
        "3.0 h",
        "3.0 d",
    ]


# --- the group over the fakes ------------------------------------------------------------


class PitrServer:
    """The db container's archiver and pgBackRest, as doctor reads them."""

    def __init__(self, stack: FakeStack, monkeypatch: pytest.MonkeyPatch):
        self.now = datetime.now(UTC)
        self.archiver = archiver(now=self.now)
        self.backups = [("20261201-000000F", "full", self.now - DAY)]
        self.info_fails = False
        self.version = "pgBackRest 2.45"
        self.asked: list[str] = []  # what doctor read: archiver, version, info
        self.listing: dict[str, dict[str, str]] = {}  # the WAL archive, as repo-ls says
        db = stack.db
        query, run = db.query, db.run

        def answer(sql: str, database: str | None = None) -> str:
            if sql == pitr.ARCHIVER_SQL:
                self.asked.append("archiver")
                return self.row()
            if "wal_segment_size" in sql:
                return f"{16 * 2**20}\n"
            return query(sql, database)

        def execute(argv: Argv, **kwargs: object) -> ExecResult:
            if argv[0] != "pgbackrest":
                return run(argv, **kwargs)  # type: ignore[arg-type]
            self.asked.append(argv[-1])
            if argv == pitr.version():
                return ExecResult(argv, 0, (self.version + "\n").encode(), "", None)
            if argv == pitr.archive_ls(1):
                return ExecResult(argv, 0, json.dumps(self.listing).encode(), "", None)
            assert argv == pitr.info(), argv
            if self.info_fails:
                stderr = "ERROR: [056]: unable to list file info for path '/repo'"
                return ExecResult(argv, 56, b"", stderr, None)
            return ExecResult(argv, 0, self.info().encode(), "", None)

        monkeypatch.setattr(db, "query", answer)
        monkeypatch.setattr(db, "run", execute)

    def row(self) -> str:
        a = self.archiver

        def at(value: datetime | None) -> str:
            return value.isoformat().replace("+00:00", "Z") if value else ""

        return (
            "\t".join(
                (
                    a.last_archived_wal or "",
                    at(a.last_archived_at),
                    str(a.failed_count),
                    a.last_failed_wal or "",
                    at(a.last_failed_at),
                    a.current_wal,
                    str(a.ready),
                    str(a.pg_wal_bytes),
                    a.archive_mode,
                    at(a.now),
                )
            )
            + "\n"
        )

    def info(self) -> str:
        def backup(label: str, kind: str, stop: datetime) -> dict[str, object]:
            return {
                "label": label,
                "type": kind,
                "database": {"repo-key": 1},
                "timestamp": {"start": int(stop.timestamp()) - 60, "stop": int(stop.timestamp())},
                "archive": {"start": WAL.format(2), "stop": WAL.format(2)},
                "info": {"size": 1000, "repository": {"delta": 100}},
                "error": False,
            }

        status = {"code": 0, "message": "ok"}
        return json.dumps(
            [
                {
                    "name": "vault",
                    "status": status,
                    "cipher": "aes-256-cbc",
                    "repo": [{"key": 1, "cipher": "aes-256-cbc", "status": status}],
                    "backup": [backup(*b) for b in self.backups],
                    "archive": [
                        {"database": {"repo-key": 1}, "min": WAL.format(1), "max": WAL.format(5)}
                    ],
                }
            ]
        )


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    return make_stack(tmp_path, monkeypatch, app_tables())


def configure(stack: FakeStack, *, enabled: bool = True) -> Path:
    """[pitr] with a folder repository; enabled: the override and the passphrase there.
    Returns the passphrase file."""
    root = stack.settings.project_dir
    nas = DirTargetSettings(type="dir", path=root.parent / "nas")
    stack.settings = stack.settings.model_copy(
        update={
            "targets": {"nas": nas},
            "pitr": PitrSettings(repos=("nas",)),
        }
    )
    passphrase = root / ".env.pitr"
    if enabled:
        state = root / ".recoverctl"
        state.mkdir(mode=0o700)
        (state / pitr.override_name(PROJECT)).write_text("{}\n")
        passphrase.write_text(PASSPHRASE)
        os.chmod(passphrase, 0o600)
    return passphrase


def pushed(stack: FakeStack, data: bytes) -> None:
    """envcopy's record, as env push leaves it for target nas."""
    stack.backups.mkdir(exist_ok=True)
    files = {"env:.env": "0" * 64, "env:.env.pitr": hashlib.sha256(data).hexdigest()}
    body = {"version": 1, "targets": {"nas": {"files": files}}}
    (stack.backups / f".envfiles-{PROJECT}.json").write_text(json.dumps(body))


def rows(stack: FakeStack, only: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    report = doctor.run(stack.session(), groups=("pitr",), only=only)
    return {c.name: (c.status, c.evidence) for c in report.checks}


def test_without_pitr_the_group_shows_nothing(stack: FakeStack) -> None:
    assert rows(stack) == {}
    # Asked for by name, a check says why it did not run.
    (status, evidence) = rows(stack, ["pitr.archiving"])["pitr.archiving"]
    assert (status, evidence) == (WARN, "not checked: point-in-time recovery is not configured")


def test_pitr_set_but_not_enabled_is_one_failure(stack: FakeStack) -> None:
    configure(stack, enabled=False)
    found = doctor.run(stack.session(), groups=("pitr",))
    assert [(c.name, c.status) for c in found.checks] == [("pitr.enabled", FAIL)]
    assert "archiving is not enabled" in found.checks[0].evidence
    assert found.checks[0].fix.startswith("recoverctl pitr enable")


def test_an_enabled_stack_is_healthy_and_every_row_is_named(
    stack: FakeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    passphrase = configure(stack)
    pushed(stack, passphrase.read_bytes())
    server = PitrServer(stack, monkeypatch)
    found = rows(stack)
    assert list(found) == [
        "pitr.enabled",
        "pitr.archiving",
        "pitr.rpo",
        "pitr.pg_wal",
        "pitr.repos.nas",
        "pitr.base_backup.nas",
        "pitr.window.nas",
        "pitr.passphrase",
    ]
    # A day after enable, the window keeps growing for six days more: the one warning.
    assert {n: s for n, (s, _) in found.items() if s != OK} == {"pitr.window.nas": WARN}
    assert "pgBackRest 2.45" in found["pitr.repos.nas"][1]
    assert "not in a git checkout, off-site on nas" in found["pitr.passphrase"][1]
    # Each report is read once per run, whatever the number of checks reading it.
    assert sorted(server.asked) == ["archive/vault", "archiver", "info", "version"]
    server.asked.clear()
    server.archiver = replace(server.archiver, archive_mode="off")
    found = rows(stack)
    assert found["pitr.enabled"][0] == FAIL and found["pitr.archiving"][0] == FAIL
    assert sorted(server.asked) == ["archive/vault", "archiver", "info", "version"]
    # WAL missing from the archive after the base backup's first segment: the window fails.
    server.archiver = replace(server.archiver, archive_mode="on")
    server.listing = {
        f"15-1/0000000100000000/{WAL.format(n)}-{'ab' * 20}.lz4": {"type": "file"}
        for n in (2, 3, 5)
    }
    status, evidence = rows(stack)["pitr.window.nas"]
    assert status == FAIL and f"WAL {WAL.format(4)} to {WAL.format(4)} (1 segment)" in evidence


def test_archiving_failing_and_a_repository_that_cannot_be_read(
    stack: FakeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    passphrase = configure(stack)
    pushed(stack, passphrase.read_bytes())
    server = PitrServer(stack, monkeypatch)
    server.archiver = archiver(
        now=server.now, archived_ago=timedelta(minutes=5), failed_ago=timedelta(seconds=2), ready=3
    )
    server.info_fails = True
    found = rows(stack)
    assert found["pitr.archiving"][0] == FAIL and "failed at" in found["pitr.archiving"][1]
    # One row says pgBackRest's info failed; the checks that read it add none.
    assert found["pitr.repos"] == (
        FAIL,
        "pgbackrest info failed: unable to list file info for path '/repo'.",
    )
    assert not [n for n in found if n.startswith(("pitr.base_backup", "pitr.window"))]


def test_the_passphrase_private_ignored_and_off_site(stack: FakeStack) -> None:
    passphrase = configure(stack)
    only = ["pitr.passphrase"]
    assert rows(stack, only)["pitr.passphrase"][0] == FAIL  # never pushed
    pushed(stack, passphrase.read_bytes())
    assert rows(stack, only)["pitr.passphrase"][0] == OK
    os.chmod(passphrase, 0o644)
    assert rows(stack, only)["pitr.passphrase"] == (
        FAIL,
        ".env.pitr is mode 0o644: others can read it",
    )
    os.chmod(passphrase, 0o600)
    root = stack.settings.project_dir
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    status, evidence = rows(stack, only)["pitr.passphrase"]
    assert status == FAIL and "not ignored by git" in evidence
    (root / ".gitignore").write_text(".env*\n")
    status, evidence = rows(stack, only)["pitr.passphrase"]
    assert status == OK and "ignored by git, off-site on nas" in evidence
    passphrase.write_text("PGBACKREST_CIPHER_PASSWORD=short\n")
    status, evidence = rows(stack, only)["pitr.passphrase"]
    assert status == FAIL and "damaged" in evidence
    passphrase.unlink()
    status, evidence = rows(stack, only)["pitr.passphrase"]
    assert status == FAIL and "missing" in evidence


def test_without_targets_the_passphrase_lives_on_this_disk_only(stack: FakeStack) -> None:
    configure(stack)
    stack.settings = stack.settings.model_copy(update={"targets": {}})
    status, evidence = rows(stack, ["pitr.passphrase"])["pitr.passphrase"]
    assert status == WARN and "no off-site target" in evidence
