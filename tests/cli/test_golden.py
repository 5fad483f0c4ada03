"""Golden output: every command's text and --json output, every failure reachable without
an engine and every error code, compared byte for byte with files recorded from the code
as it was before a refactoring (tests/golden/<case>.txt).

Record only on purpose: RECOVERCTL_GOLDEN_RECORD=1 writes the files and fails the run, so
a recording never passes silently. A missing file fails. Only what varies between runs is
masked (the tmp paths, the clock, measured durations); wording, fields, order and codes
all show.

When the code moves, adapt the table of patch targets and result builders below (the one
section that may change); never the golden files.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from recoverctl import signals
from recoverctl.cli import render
from recoverctl.cli.app import app
from recoverctl.errors import (
    CommandFailed,
    ConfigError,
    EngineError,
    ErrorCode,
    Interrupted,
    ProjectFileError,
    RecoverctlError,
    StackError,
    UsageError,
)
from tests import clitree, samples

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
RECORD = os.environ.get("RECOVERCTL_GOLDEN_RECORD") == "1"
# A fixed terminal for click, typer's rich help and rich itself.
ENV = {"COLUMNS": "100", "LINES": "40", "TERMINAL_WIDTH": "100", "NO_COLOR": "1"}
NOW = datetime(2026, 1, 9, 12, 0, 0, tzinfo=UTC)

Patch = Callable[[pytest.MonkeyPatch, Path], None]


# =====================================================================================
# THE TABLE: patch targets and result builders. After a refactoring only this section
# may change (a module moved, a result class renamed); the golden files may not.
# =====================================================================================

# The action each command calls, where a test replaces it.
LIST_BACKUPS = "recoverctl.actions.listing.list_backups"
UP = "recoverctl.actions.stack.up"
DOWN = "recoverctl.actions.stack.down"
PS = "recoverctl.actions.stack.ps"
RESTART = "recoverctl.actions.stack.restart"
BACKUP = "recoverctl.actions.backup.backup"
VERIFY = "recoverctl.actions.verify.verify"
RESTORE_PREPARE = "recoverctl.actions.restore.prepare"
RESTORE = "recoverctl.actions.restore.restore"
DOCTOR = "recoverctl.actions.doctor.doctor"
KEYS_CHECK = "recoverctl.actions.keys.check"
RECOVER = "recoverctl.actions.recover.recover"
PUSH = "recoverctl.actions.push.push"
BACKUP_PUSH = "recoverctl.actions.backup.push"  # backup's push to the configured targets
PULL = "recoverctl.actions.pull.pull"
ENV_PUSH = "recoverctl.actions.envfiles.push"
ENV_PULL = "recoverctl.actions.envfiles.pull"
NEW_IDENTITY = "recoverctl.actions.identity.new_identity"
INIT = "recoverctl.actions.init.init"
INIT_ENSURE_ABSENT = "recoverctl.actions.init.ensure_absent"
SCHEDULE_INSTALL = "recoverctl.actions.schedule.install"
SCHEDULE_STATUS = "recoverctl.actions.schedule.status"
SCHEDULE_REMOVE = "recoverctl.actions.schedule.remove"
PRUNE_PLAN = "recoverctl.actions.prune.plan"
PRUNE = "recoverctl.actions.prune.prune"
ROUTINE = "recoverctl.actions.routine.routine"
DRILL = "recoverctl.actions.drill.drill"
LIST_TARGET = "recoverctl.actions.listing.list_target"
VERIFY_OFFSITE = "recoverctl.actions.verify.verify_offsite"
VERIFY_PITR = "recoverctl.actions.verify.verify_pitr"
# The flag cli/app.py sets when SIGTERM arrived.
TERMINATED_BY = (signals, "_terminated")
# The consoles rich prints with, made once at import: their width is fixed here.
CONSOLES = (render.out, render.err)


def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ages ("3d") are counted from now: the clock they read is fixed."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return NOW if tz is not None else NOW.replace(tzinfo=None)

    import recoverctl.core.naming

    monkeypatch.setattr(recoverctl.core.naming, "datetime", Frozen)


def _check(name: str, status: str = "ok") -> Any:
    from recoverctl.core.checks import Check

    fix = "" if status == "ok" else f"fix {name} this way"
    return Check(name, status, f"{name}: what was seen", fix)  # type: ignore[arg-type]


def _status() -> Any:
    from recoverctl.core.stack import ServiceStatus, StackStatus

    return StackStatus(
        "vault-dev",
        "dev",
        (
            ServiceStatus("db", "vault-dev-db-1", "running", "healthy"),
            ServiceStatus(
                "backend",
                "vault-dev-backend-1",
                "running",
                "healthy",
                ("127.0.0.1:8000->8000/tcp",),
            ),
            ServiceStatus("frontend", None, "exited", None),
        ),
    )


def _manifest() -> Any:
    return samples.manifest()


def _plan() -> Any:
    return samples.restore_plan(leftovers=("vault__restore_new_20251231_010101",))


def _verify_report(*statuses: str) -> Any:
    from recoverctl.services.verification import VerifyReport

    names = ("format", "integrity", "structure")
    checks = tuple(_check(n, s) for n, s in zip(names, statuses, strict=True))
    return VerifyReport(
        Path("/p/backups/backup_2026-01-02_030405.dump"), "custom", False, checks, _manifest(), 0.5
    )


def _recover(*statuses: str) -> Any:
    from recoverctl.actions.recover import RecoverResult

    names = ("db.answers", "app.admin")
    checks = tuple(_check(n, s) for n, s in zip(names, statuses, strict=True))
    return RecoverResult(
        "vault-dev",
        "dev",
        Path("/p/backups/backup_2026-01-02_030405.dump"),
        None,
        checks,
        "http://127.0.0.1:8000",
        42.0,
        (("bringing the stack up", 30.0), ("restore: swapping", 0.5)),
    )


def _doctor(*statuses: str) -> Any:
    from recoverctl.services.doctor import DoctorReport

    names = ("engine", "db.answers")
    checks = tuple(_check(n, s) for n, s in zip(names, statuses, strict=True))
    return DoctorReport("vault-dev", "dev", checks, 0.3)


def _up() -> Any:
    from recoverctl.actions.stack import UpResult

    return UpResult(_status(), True, 31.0)


def _down(volumes: bool) -> Any:
    from recoverctl.actions.stack import DownResult

    backup = Path("/p/backups/backup_2026-01-02_030405.dump") if volumes else None
    return DownResult("vault-dev", "dev", volumes, backup)


def _backup() -> Any:
    from recoverctl.services.dump import BackupResult

    return BackupResult(
        Path("/p/backups/backup_2026-01-02_030405.dump"),
        Path("/p/backups/backup_2026-01-02_030405.dump.json"),
        _manifest(),
        ("the dump is smaller than the last one",),
    )


def _restore() -> Any:
    from recoverctl.services.restore import RestoreResult

    return RestoreResult(
        _plan(),
        Path("/p/backups/safety_2026-01-09_120000.dump"),
        12,
        40,
        3.5,
        (("load", 1.5), ("swap", 0.2)),
        ("public.vault_secret: 40 -> 41",),
        "vault__restore_old_20260102_030405",
        0.8,
    )


def _keys_check() -> Any:
    from recoverctl.actions.keys import KeyCheckResult

    return KeyCheckResult(
        Path("/safe/alice.zkkey.json"),
        "sha256:" + "cd" * 32,
        2048,
        600000,
        True,
        "alice",
        5,
        3,
        3,
    )


def _copy(target: str, status: str, error: bool = False) -> Any:
    from recoverctl.services.offsite import Copy

    return Copy(
        target,
        f"/srv/{target}/vault-dev/dev" if target == "nas" else f"s3://bucket/{target}",
        "backup_2026-01-02_030405.dump",
        status,  # type: ignore[arg-type]
        "age" if target != "clear" else "none",
        4096 if status != "failed" else 0,
        "ef" * 32 if status != "failed" else None,
        2.5 if status == "pushed" else 0.0,
        ("backup_2026-01-02_030405.dump.age.partial",) if status == "pushed" else (),
        RecoverctlError("the bucket said no", "check its policy", code=ErrorCode.TARGET_REFUSED)
        if error
        else None,
    )


def _push_result(failed: bool) -> Any:
    from recoverctl.services.offsite import PushResult

    copies = [_copy("nas", "pushed"), _copy("clear", "present")]
    if failed:
        copies.append(_copy("cloud", "failed", error=True))
    return PushResult(Path("/p/backups/backup_2026-01-02_030405.dump"), tuple(copies))


def _offsite_failed() -> Any:
    from recoverctl.services.offsite import OffsiteFailed

    return OffsiteFailed(
        "backup_2026-01-02_030405.dump is good here, but not on target cloud: the bucket said no",
        "The local backup stays; push it once fixed: recoverctl push.",
        [_push_result(True)],
    )


def _push_report() -> Any:
    from recoverctl.actions.push import PushReport

    return PushReport((_push_result(False),))


def _env_copy(target: str, status: str) -> Any:
    from recoverctl.services.envcopy import EnvCopy

    return EnvCopy(
        target,
        f"/srv/{target}/vault-dev/env",
        status,  # type: ignore[arg-type]
        (".env", ".env.production") if status != "failed" else (),
        1024 if status == "pushed" else 0,
        0.4 if status == "pushed" else 0.0,
        ("env-2026-01-01_000000.age",) if status == "pushed" else (),
        RecoverctlError("disk full on nas", "free some space", code=ErrorCode.DISK_FULL)
        if status == "failed"
        else None,
    )


def _env_push(failed: bool) -> Any:
    from recoverctl.services.envcopy import EnvPushResult

    copies = [_env_copy("nas", "pushed"), _env_copy("usb", "unchanged")]
    if failed:
        copies.append(_env_copy("cloud", "failed"))
    return EnvPushResult("vault-dev", (".env", ".env.production"), tuple(copies))


def _env_push_failed() -> Any:
    from recoverctl.services.envcopy import EnvPushFailed

    return EnvPushFailed(
        "The env files are not on target cloud: disk full on nas",
        "Free some space, then: recoverctl env push --target cloud",
        _env_push(True),
    )


def _backup_done(env: bool) -> Any:
    from recoverctl.actions.backup import BackupDone

    return BackupDone(_backup(), _push_result(False), _env_push(False) if env else None)


def _push_report_failed() -> Any:
    from recoverctl.actions.push import PushReport

    return PushReport((_push_result(True),), error=_offsite_failed())


def _env_push_done() -> Any:
    from recoverctl.actions.envfiles import EnvPushDone

    pushed = _env_push(False)
    return EnvPushDone(pushed.project, pushed.files, pushed.copies)


def _env_push_done_failed() -> Any:
    from recoverctl.actions.envfiles import EnvPushDone

    failed = _env_push_failed()
    pushed = failed.result
    return EnvPushDone(pushed.project, pushed.files, pushed.copies, failed)


def _backup_done_failed() -> Any:
    from recoverctl.actions.backup import BackupDone

    return BackupDone(_backup(), _push_result(True), None, error=_offsite_failed())


def _env_pull() -> Any:
    from recoverctl.services.envcopy import EnvPullResult

    return EnvPullResult(
        "vault-dev",
        "nas",
        "/srv/nas/vault-dev/env",
        datetime(2026, 1, 8, 3, 4, 5, tzinfo=UTC),
        (Path("/p/.env"),),
        (Path("/p/.env.production"),),
        ("key_file: no key_file is set here",),
        0.7,
    )


def _remote_manifest() -> Any:
    from recoverctl.core.offsite import RemoteManifest, StoredObject

    return RemoteManifest(
        backup="backup_2026-01-02_030405.dump",
        format="custom",
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        uploaded_at=datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC),
        plain_size=2048,
        encryption="age",
        recipients=("age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",),
        data=StoredObject(name="backup_2026-01-02_030405.dump.age", size=2300, sha256="ef" * 32),
        manifest=StoredObject(
            name="backup_2026-01-02_030405.dump.json.age", size=900, sha256="12" * 32
        ),
        recoverctl_version="0.1.0",
        project="vault-dev",
        stack="dev",
    )


def _pulled() -> Any:
    from recoverctl.services.offsite import Pulled

    remote = _remote_manifest()
    return Pulled(
        "nas",
        "/srv/nas/vault-dev/dev",
        Path("/p/backups/backup_2026-01-02_030405.dump"),
        Path("/p/backups/backup_2026-01-02_030405.dump.json"),
        _manifest(),
        remote,
        1.5,
    )


def _target_listing(empty: bool = False) -> Any:
    from recoverctl.core.offsite import Listing, ObjectInfo, RemoteBackup
    from recoverctl.services.offsite import TargetListing

    def obj(name: str, size: int) -> Any:
        return ObjectInfo(name, size, datetime(2026, 1, 2, 3, 5, 0, tzinfo=UTC))

    complete = RemoteBackup(
        "backup_2026-01-02_030405.dump",
        True,
        _remote_manifest(),
        (
            obj("backup_2026-01-02_030405.dump.age", 2300),
            obj("backup_2026-01-02_030405.dump.json.age", 900),
        ),
    )
    incomplete = RemoteBackup(
        "backup_2026-01-08_030405.dump",
        False,
        None,
        (obj("backup_2026-01-08_030405.dump.age.partial", 100),),
        ("no remote manifest", "the data object is missing"),
    )
    listing = Listing(
        () if empty else (incomplete, complete), (obj("notes.txt", 3),) if not empty else ()
    )
    return TargetListing("nas", "/srv/nas/vault-dev/dev", "age", listing, NOW)


def _offsite_report(decrypted: bool, *statuses: str) -> Any:
    from recoverctl.actions.verify import OffsiteReport

    names = ("objects", "sha256", "manifest")
    checks = tuple(_check(n, s) for n, s in zip(names, statuses, strict=True))
    return OffsiteReport(
        "nas",
        "/srv/nas/vault-dev/dev",
        "backup_2026-01-02_030405.dump",
        decrypted,
        False,
        "custom" if decrypted else None,
        checks,
        1.2,
    )


def _new_identity() -> Any:
    from recoverctl.actions.identity import NewIdentity

    return NewIdentity(
        Path("/safe/identity.txt"),
        "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
    )


def _init() -> Any:
    from recoverctl.actions.init import InitResult

    return InitResult(
        Path("/p/.env"),
        "dev",
        ("POSTGRES_PASSWORD", "DJANGO_SECRET_KEY"),
        {"POSTGRES_IMAGE": "postgres:16", "PYTHON_IMAGE": None},
        "official",
        ("localhost", "127.0.0.1"),
        ("http://localhost:8000", "http://127.0.0.1:8000"),
        8000,
        ("recoverctl up", "recoverctl backup"),
        ("no registry answered: the official images are assumed",),
    )


def _installation(kind: str, active: bool | None) -> Any:
    from recoverctl.actions.schedule import Installation

    return Installation(
        kind,  # type: ignore[arg-type]
        ("/etc/systemd/system/recoverctl-vault-dev.service",),
        "*-*-* *:00:00",
        "2026-01-09 13:00:00 UTC" if active else None,
        active,
    )


def _schedule(action: str) -> Any:
    from recoverctl.actions.schedule import ScheduleResult

    installed: tuple[Any, ...] = () if action == "remove" else (_installation("systemd", True),)
    if action == "status":
        installed = (_installation("systemd", True), _installation("cron", None))
    return ScheduleResult(
        action,  # type: ignore[arg-type]
        "vault-dev",
        "dev",
        "recoverctl-vault-dev",
        installed,
        ("/usr/bin/recoverctl", "routine"),
        {
            "recoverctl-vault-dev.service": "[Service]\nExecStart=/usr/bin/recoverctl routine\n",
            "recoverctl-vault-dev.timer": "[Timer]\nOnCalendar=*-*-* *:00:00\n",
        }
        if action in ("install", "print")
        else {},
        ("/etc/systemd/system/recoverctl-vault-dev.timer",) if action == "remove" else (),
        {  # type: ignore[arg-type]
            "ok": False,
            "error_code": "offsite_failed",
            "finished_at": "2026-01-09T11:00:00+00:00",
            "message": "not on target cloud",
        }
        if action == "status"
        else None,
        ("cron is installed too: two schedules run the routine",) if action == "install" else (),
    )


def _prune(dry_run: bool) -> Any:
    from recoverctl.actions.prune import PruneResult
    from recoverctl.services.retention import Item, ScopePlan, ScopeResult

    def at(day: int) -> datetime:
        return datetime(2026, 1, day, 3, 4, 5, tzinfo=UTC)

    items = (
        Item("backup_2026-01-08_030405.dump", at(8), "quick ok", 2048, ("newest",)),
        Item("backup_2026-01-05_030405.dump", at(5), "deep ok", 2048, ("newest deep", "daily")),
        Item("backup_2026-01-02_030405.dump", at(2), "never", 1024, ()),
    )
    local = ScopePlan(
        "local",
        "/p/backups",
        "keep 7 daily, 4 weekly",
        items,
        ("backup_2026-01-01_030405.dump.json",),
    )
    empty = ScopePlan("nas", "/srv/nas/vault-dev/dev", "keep 7 daily", ())
    deleted = () if dry_run else ("backup_2026-01-02_030405.dump",)
    removed = () if dry_run else ("backup_2026-01-01_030405.dump.json",)
    return PruneResult(
        "dev", dry_run, (ScopeResult(local, deleted, removed), ScopeResult(empty, (), ()))
    )


def _routine(partial: bool) -> Any:
    from recoverctl.actions.routine import RoutineReport
    from recoverctl.services.offsite import OffsiteFailed
    from recoverctl.services.routine import StepRecord

    push = (
        StepRecord(name="push", status="failed", seconds=1.5, detail="cloud: the bucket said no")
        if partial
        else StepRecord(name="push", status="ok", seconds=1.5, detail="nas: pushed")
    )
    steps = (
        StepRecord(name="backup", status="ok", seconds=2.0, detail="backup_2026-01-09_120000.dump"),
        StepRecord(name="verify", status="ok", seconds=0.5, detail="quick"),
        push,
        StepRecord(name="drill", status="skipped", detail="not due: last passed 2d ago"),
        StepRecord(name="prune", status="ok", seconds=0.1, detail="local: kept 3, deleted 0"),
        StepRecord(name="report", status="ok", seconds=0.0, detail="routine record"),
    )
    error = (
        OffsiteFailed(
            "backup_2026-01-09_120000.dump is good here, but not on target cloud",
            "push it once fixed",
            [],
        )
        if partial
        else None
    )
    return RoutineReport(
        "vault-dev",
        "dev",
        datetime(2026, 1, 9, 12, 0, 0, tzinfo=UTC),
        4.1,
        steps,
        Path("/p/backups/backup_2026-01-09_120000.dump"),
        error,
        ("the last drill is 8 days old",),
    )


def _drill(outcome: str) -> Any:
    from recoverctl.core.drill import CheckRow, DrillError, DrillRecord, StepTime
    from recoverctl.services.drill import DrillResult

    failed = outcome == "failed-checks"
    error = (
        DrillError(
            code="stack_unhealthy",
            message="the drill's backend never became healthy",
            hint="look at its log lines above",
            details="backend | ImportError: no module named x",
        )
        if outcome == "error"
        else None
    )
    record = DrillRecord(
        result="passed" if outcome in ("passed", "leftovers") else "failed",
        project="vault-dev",
        drill_project="vault-dev-drill",
        stack="dev",
        source="local",
        backup="backup_2026-01-02_030405.dump",
        backup_sha256="ab" * 32,
        backup_created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        started_at=datetime(2026, 1, 9, 12, 0, 0, tzinfo=UTC),
        finished_at=datetime(2026, 1, 9, 12, 1, 30, tzinfo=UTC),
        recovery_seconds=None if outcome == "error" else 61.5,
        seconds=90.0,
        steps=(StepTime(step="up", seconds=40.0), StepTime(step="restore", seconds=21.5)),
        checks=(
            CheckRow(name="db.answers", status="ok", evidence="select 1"),
            CheckRow(
                name="secrets.open",
                status="fail" if failed else "ok",
                evidence="opened 3 of 3",
                fix="check the key export" if failed else None,
            ),
        ),
        error=error,
        leftovers=("volume vault-dev-drill_db",) if outcome == "leftovers" else (),
        recoverctl_version="0.1.0",
    )
    return DrillResult(
        record,
        Path("/p/backups/drills/DRILL-20260109T120000Z.json"),
        ("no key_file: the secrets were not opened",),
    )


def _with_targets(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    (project / "nas").mkdir()
    (project / "config.toml").write_text(
        f'[targets.nas]\ntype = "dir"\npath = "{project / "nas"}"\nencryption = "none"\n'
    )


def _raising(make: Callable[[], BaseException]) -> Callable[[], Any]:
    def fail() -> Any:
        raise make()

    return fail


def _prepared() -> Any:
    return SimpleNamespace(plan=_plan())


# The successes: case name -> (arguments, {target: builder}).
SUCCESSES: dict[str, tuple[list[str], dict[str, Callable[[], Any]]]] = {
    "up": (["up"], {UP: _up}),
    "down": (["down"], {DOWN: lambda: _down(False)}),
    "down-volumes": (["down", "--volumes", "--yes"], {DOWN: lambda: _down(True)}),
    "ps": (["ps"], {PS: _status}),
    "restart": (["restart"], {RESTART: _status}),
    "backup": (["backup"], {BACKUP: _backup}),
    "verify": (["verify", "latest"], {VERIFY: lambda: _verify_report("ok", "ok", "warn")}),
    "verify-corrupt": (
        ["verify", "latest"],
        {VERIFY: lambda: _verify_report("ok", "fail", "fail")},
    ),
    "restore-dry-run": (["restore", "latest", "--dry-run"], {RESTORE_PREPARE: _prepared}),
    "restore": (["restore", "latest", "--yes"], {RESTORE_PREPARE: _prepared, RESTORE: _restore}),
    "doctor": (["doctor"], {DOCTOR: lambda: _doctor("ok", "warn")}),
    "doctor-failing": (["doctor"], {DOCTOR: lambda: _doctor("fail", "ok")}),
    "doctor-list": (["doctor", "--list"], {}),
    "keys-check": (["keys", "check"], {KEYS_CHECK: _keys_check}),
    "recover": (["recover"], {RECOVER: lambda: _recover("ok", "ok")}),
    "recover-failing": (["recover"], {RECOVER: lambda: _recover("ok", "fail")}),
    "push": (["push"], {PUSH: _push_report}),
    "push-failed-target": (["push"], {PUSH: _push_report_failed}),
    "pull": (["pull", "latest", "--target", "nas"], {PULL: _pulled}),
    "env-push": (["env", "push"], {ENV_PUSH: _env_push_done}),
    "env-push-failed-target": (["env", "push"], {ENV_PUSH: _env_push_done_failed}),
    "env-pull": (["env", "pull", "--target", "nas"], {ENV_PULL: _env_pull}),
    "keys-new-identity": (
        ["keys", "new-identity", "/safe/identity.txt"],
        {NEW_IDENTITY: _new_identity},
    ),
    "init": (["init"], {INIT_ENSURE_ABSENT: lambda: None, INIT: _init}),
    "schedule-install": (["schedule", "install"], {SCHEDULE_INSTALL: lambda: _schedule("install")}),
    "schedule-install-print": (
        ["schedule", "install", "--print"],
        {SCHEDULE_INSTALL: lambda: _schedule("print")},
    ),
    "schedule-status": (["schedule", "status"], {SCHEDULE_STATUS: lambda: _schedule("status")}),
    "schedule-remove": (["schedule", "remove"], {SCHEDULE_REMOVE: lambda: _schedule("remove")}),
    "schedule-remove-nothing": (
        ["schedule", "remove"],
        {
            SCHEDULE_REMOVE: lambda: _schedule("remove").__class__(
                "remove", "vault-dev", "dev", "recoverctl-vault-dev", ()
            )
        },
    ),
    "prune-dry-run": (["prune", "--dry-run"], {PRUNE_PLAN: lambda: _prune(True)}),
    "prune": (["prune", "--yes"], {PRUNE: lambda: _prune(False)}),
    "routine": (["routine"], {ROUTINE: lambda: _routine(False)}),
    "routine-partial": (["routine"], {ROUTINE: lambda: _routine(True)}),
    "drill": (["drill"], {DRILL: lambda: _drill("passed")}),
    "drill-failing-checks": (["drill"], {DRILL: lambda: _drill("failed-checks")}),
    "drill-error": (["drill"], {DRILL: lambda: _drill("error")}),
    "drill-leftovers": (["drill"], {DRILL: lambda: _drill("leftovers")}),
    "list-target": (["list", "--target", "nas"], {LIST_TARGET: _target_listing}),
    "list-target-empty": (
        ["list", "--target", "nas"],
        {LIST_TARGET: lambda: _target_listing(True)},
    ),
    "verify-target-sealed": (
        ["verify", "latest", "--target", "nas"],
        {VERIFY_OFFSITE: lambda: _offsite_report(False, "ok", "ok", "warn")},
    ),
    "verify-target-decrypted": (
        ["verify", "latest", "--target", "nas"],
        {VERIFY_OFFSITE: lambda: _offsite_report(True, "ok", "ok", "ok")},
    ),
    "verify-target-sealed-corrupt": (
        ["verify", "latest", "--target", "nas"],
        {VERIFY_OFFSITE: lambda: _offsite_report(False, "ok", "fail", "ok")},
    ),
    "verify-target-decrypted-corrupt": (
        ["verify", "latest", "--target", "nas"],
        {VERIFY_OFFSITE: lambda: _offsite_report(True, "fail", "ok", "fail")},
    ),
    "verify-pitr": (
        ["verify", "--pitr"],
        {VERIFY_PITR: lambda: samples.pitr_verify_report(deep=False)},
    ),
    "verify-pitr-deep": (
        ["verify", "--pitr", "--deep"],
        {VERIFY_PITR: samples.pitr_verify_report},
    ),
    "verify-pitr-damaged": (
        ["verify", "--pitr", "--deep"],
        {VERIFY_PITR: lambda: samples.pitr_verify_report(damaged=True)},
    ),
}

# Successes that need the settings to name an off-site target: (arguments, {target: builder}).
WITH_TARGETS: dict[str, tuple[list[str], dict[str, Callable[[], Any]]]] = {
    "backup-offsite": (["backup"], {BACKUP: _backup, BACKUP_PUSH: lambda: _backup_done(True)}),
    "backup-offsite-no-env": (
        ["backup"],
        {BACKUP: _backup, BACKUP_PUSH: lambda: _backup_done(False)},
    ),
    "backup-offsite-failed": (
        ["backup"],
        {BACKUP: _backup, BACKUP_PUSH: _backup_done_failed},
    ),
}

# Every error class, raised from inside a command (list's action) with each code.
ERROR_CLASSES: dict[str, type[RecoverctlError]] = {
    "usage-error": UsageError,
    "config-error": ConfigError,
    "engine-error": EngineError,
    "command-failed": CommandFailed,
    "stack-error": StackError,
    "interrupted": Interrupted,
    "project-file-error": ProjectFileError,
    "recoverctl-error": RecoverctlError,
}

# =====================================================================================
# end of the table
# =====================================================================================


COMMANDS = clitree.commands()
JSON_COMMANDS = clitree.json_commands(COMMANDS)
ARGS: dict[str, list[str]] = {
    "verify": ["latest"],
    "restore": ["latest"],
    "pull": ["latest", "--target", "nas"],
    "keys new-identity": ["/nonexistent/identity.txt"],
}


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    patch: Patch | None = None
    input: str | None = None
    json: bool = True  # also run with --json, as its own golden file
    env: dict[str, str] = field(default_factory=dict)
    timed: bool = False  # real work measured at run time: its durations are masked


def _raise(exc: BaseException) -> Patch:
    def patch(monkeypatch: pytest.MonkeyPatch, _project: Path) -> None:
        def fail(*_a: object, **_k: object) -> Any:
            raise exc

        monkeypatch.setattr(LIST_BACKUPS, fail)

    return patch


def _returning(targets: dict[str, Callable[[], Any]]) -> Patch:
    def patch(monkeypatch: pytest.MonkeyPatch, _project: Path) -> None:
        for target, make in targets.items():
            monkeypatch.setattr(target, lambda *_a, _make=make, **_k: _make())

    return patch


def _then(*patches: Patch) -> Patch:
    def patch(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
        for p in patches:
            p(monkeypatch, project)

    return patch


def _file(name: str, text: str, mode: int = 0o600) -> Patch:
    def patch(_monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
        path = project / name
        path.write_text(text)
        path.chmod(mode)

    return patch


def _sigterm(monkeypatch: pytest.MonkeyPatch, _project: Path) -> None:
    monkeypatch.setattr(*TERMINATED_BY, True)


def _outside(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    elsewhere = project.with_name(project.name + "-elsewhere")  # not under the project
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("RECOVERCTL_CONFIG", str(elsewhere / "none.toml"))


def _backups(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    backups = project / "backups"
    backups.mkdir()
    backups.chmod(0o755)  # the warning it earns does not depend on the umask
    (backups / "backup_2026-01-02_030405.dump").write_bytes(b"PGDMP" + b"\0" * 2043)
    (backups / "backup_2026-01-08_030405.sql").write_bytes(b"-- PostgreSQL database dump\n")
    (backups / "backup_2026-01-08_040405.dump.partial").write_bytes(b"PG")
    (backups / "backup_2026-02-30_120000.dump").write_bytes(b"x")


def _cases() -> Iterator[Case]:
    yield Case("version", ["--version"], json=False)
    yield Case("no-arguments", [], json=False)
    yield Case("help", ["--help"], json=False)
    for path in sorted(COMMANDS):
        yield Case(f"help-{path.replace(' ', '-')}", [*path.split(), "--help"], json=False)

    # failures that need no engine
    for command in JSON_COMMANDS:
        slug = command.replace(" ", "-")
        yield Case(
            f"outside-project-{slug}",
            [*command.split(), *ARGS.get(command, [])],
            _outside,
            timed=True,
        )
        yield Case(f"unknown-option-{slug}", [*command.split(), *ARGS.get(command, []), "--bogus"])
    for args in (["ps"], ["restart"], ["down"], ["backup"], ["logs"]):
        yield Case(f"engine-unreachable-{args[0]}", args, json=args[0] != "logs")
    yield Case("env-missing-up", ["up"])
    yield Case("env-missing-recover", ["recover"])
    yield Case("backup-not-found", ["verify", "latest"])
    yield Case("verify-no-such-path", ["verify", "nowhere.dump"])
    yield Case("restore-no-such-path", ["restore", "nowhere.dump", "--yes"])
    yield Case("keys-check-no-key-file", ["keys", "check"])
    yield Case("keys-check-missing-file", ["keys", "check", "nowhere.zkkey.json"])
    yield Case("down-volumes-unconfirmed", ["down", "--volumes"], input="")
    yield Case("logs-json", ["logs", "--json"], json=False)
    yield Case("logs-bad-tail", ["logs", "--tail", "many"])
    yield Case("backup-bad-format", ["backup", "--format", "zip"])
    yield Case("restore-missing-argument", ["restore"])
    yield Case("keys-no-subcommand", ["keys"])
    yield Case("unknown-command", ["bogus"])
    yield Case("unknown-root-option", ["--log-file", "/x", "--bogus", "ps"])
    yield Case("pull-without-target", ["pull", "latest"])
    yield Case("env-pull-without-target", ["env", "pull"])
    yield Case("prune-target-and-all", ["prune", "--target", "nas", "--all-targets"])
    yield Case("init-prod-no-host", ["init", "--prod"], input="")
    yield Case("ctrl-c", ["list"], _raise(KeyboardInterrupt()))
    yield Case("sigterm", ["list"], _then(_raise(KeyboardInterrupt()), _sigterm))
    yield Case("internal-error", ["list"], _raise(ZeroDivisionError("x went to zero")))

    # settings errors: a bad config.toml, bad environment variables
    bad_settings = {
        "config-not-toml": "[recoverctl\nrpo_hours = 24\n",
        "config-unknown-key": "[recoverctl]\nrpo_hourz = 24\n",
        "config-bad-value": '[recoverctl]\nrpo_hours = "soon"\n',
        "config-negative": "[recoverctl]\nrpo_hours = -1\n",
        "config-bad-duration": '[recoverctl]\ndeep_every = "often"\n',
        "config-bad-target": '[targets.nas]\ntype = "ftp"\npath = "/x"\n',
    }
    for name, text in bad_settings.items():
        yield Case(name, ["list"], _file("config.toml", text))
    yield Case("env-var-bad-rpo", ["list"], env={"RECOVERCTL_RPO_HOURS": "soon"})
    yield Case(
        "env-var-bad-project-dir",
        ["list"],
        env={"RECOVERCTL_PROJECT_DIR": "/nonexistent-recoverctl"},
    )
    yield Case(
        "env-file-bad",
        ["up"],
        _file(".env", "POSTGRES_PASSWORD=\nDJANGO_CSRF_TRUSTED_ORIGINS=http://[::1:8000\n"),
    )
    yield Case("env-file-world-readable", ["up"], _file(".env", "POSTGRES_PASSWORD=x\n", 0o644))

    # every error code, raised from inside a command
    for code in ErrorCode:
        yield Case(
            f"code-{code.value}",
            ["list"],
            _raise(
                RecoverctlError(
                    f"the {code.value} failure, as a person reads it",
                    f"what to do about {code.value}",
                    code=code,
                )
            ),
        )
    for name, cls in ERROR_CLASSES.items():
        yield Case(f"class-{name}", ["list"], _raise(cls(f"a {name} with no hint")))
    yield Case(
        "error-with-details",
        ["list"],
        _raise(
            CommandFailed(
                "pg_dump failed",
                "look at the lines above",
                details="pg_dump: error: connection refused\n[bracketed] line",
            )
        ),
    )
    yield Case(
        "error-with-markup",
        ["list"],
        _raise(RecoverctlError("a [bold]message[/] with [brackets]", "a hint with [red]x[/]")),
    )

    # successes
    yield Case("list-empty", ["list"])
    yield Case("list", ["list"], _backups)
    for name, (args, targets) in SUCCESSES.items():
        yield Case(name, args, _returning(targets) if targets else None)
    for name, (args, targets) in WITH_TARGETS.items():
        yield Case(name, args, _then(_with_targets, _returning(targets)))
    yield Case("doctor-real-env", ["doctor", "--only", "env"], timed=True)
    yield Case("doctor-real-git", ["doctor", "--only", "git"], timed=True)


CASES = {c.name: c for c in _cases()}
RUNS = [
    (name, mode)
    for name, c in CASES.items()
    for mode in (("text", "json") if c.json else ("text",))
]


# --- masking: only what varies between runs -----------------------------------------

# The project lives at a path of one length (/tmp, whatever TMPDIR says, and mkdtemp's
# 8-character suffix), so that a table's columns, padded to their longest cell, line up
# the same way in every run.
BASE = "/tmp"
PREFIX = "recoverctl-golden-"
_TMP = re.compile(re.escape(BASE) + "/" + PREFIX + r"[A-Za-z0-9_]{8}")
# A crash log is named after the moment and the process that wrote it.
_CRASH_LOG = re.compile(r"internal-error-\d{8}T\d{6}Z-\d+\.log")
_JSON_SECONDS = re.compile(r'("seconds": )\d+(?:\.\d+)?')
_TEXT_SECONDS = re.compile(r"(?<![\w.])\d+\.\d(?= s\b|\s{2}|$)", re.M)


def masked(text: str, project: Path, *, timed: bool) -> str:
    text = text.replace(str(project), "<PROJECT>")
    text = _TMP.sub("<TMP>", text)
    text = _CRASH_LOG.sub("internal-error-<NOW>-<PID>.log", text)
    if timed:
        text = _JSON_SECONDS.sub(r'\1"<SECONDS>"', text)
        text = _TEXT_SECONDS.sub("<SECONDS>", text)
    return text


def _render(exit_code: int, stdout: str, stderr: str) -> str:
    return f"exit: {exit_code}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}--- end ---\n"


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """As tests/cli/conftest.py's, at a path whose length never changes."""
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=BASE))
    for name in ("docker-compose.yml", "docker-compose.dev.yml", ".env.example"):
        shutil.copy(REPO / name, root / name)
    monkeypatch.chdir(root)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{root}/no-engine.sock")
    monkeypatch.setenv("RECOVERCTL_CONFIG", str(root / "config.toml"))
    for var in ("RECOVERCTL_PROJECT_DIR", "RECOVERCTL_PROJECT_NAME", "RECOVERCTL_BACKUP_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield root
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(root.with_name(root.name + "-elsewhere"), ignore_errors=True)


@pytest.mark.parametrize(("name", "mode"), RUNS, ids=[f"{n}-{m}" for n, m in RUNS])
def test_golden(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch, name: str, mode: str
) -> None:
    case = CASES[name]
    _frozen_clock(monkeypatch)
    for console in CONSOLES:
        monkeypatch.setattr(console, "_width", int(ENV["COLUMNS"]))
    if case.patch is not None:
        case.patch(monkeypatch, project)
    args = [*case.args, "--json"] if mode == "json" else case.args
    result = runner.invoke(app, args, input=case.input, env={**ENV, **case.env})
    got = _render(
        result.exit_code,
        masked(result.stdout, project, timed=case.timed),
        masked(result.stderr, project, timed=case.timed),
    )
    path = GOLDEN / f"{name}{'.json' if mode == 'json' else ''}.txt"
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
        pytest.fail("recorded, rerun without RECOVERCTL_GOLDEN_RECORD")
    assert path.exists(), f"{path.name}: no golden file (record it from the code before a change)"
    assert got == path.read_text(), f"{path.name}: the output changed"
