"""Each --json result, built with every optional part filled and with each empty, against
the JSON it produced before its fields were declared on the result itself: the same dict
and the same bytes (key order, float and date forms). tests/unit/json_results.json holds
that output; it is never regenerated in the change that touches a result."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from recoverctl.core import result as json_result
from tests import samples

GOLDEN = Path(__file__).with_name("json_results.json")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ELSEWHERE = datetime(2026, 1, 2, 4, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1)))


def _checks() -> Any:
    from recoverctl.core.checks import Check

    return (
        Check("format", "ok", "custom archive"),
        Check("integrity", "fail", "bad block\nat 12", "take another\r\nbackup"),
        Check("structure", "warn", "3 tables", "look"),
    )


def _status(services: bool = True) -> Any:
    from recoverctl.core.stack import ServiceStatus, StackStatus

    found = (
        ServiceStatus("db", "vault-dev-db-1", "running", "healthy"),
        ServiceStatus("backend", None, "exited", None, ("127.0.0.1:8000->8000/tcp",), 137),
    )
    return StackStatus("vault-dev", "dev", found if services else ())


def _manifest(code: bool = True) -> Any:
    from recoverctl.core.manifest import CodeInfo

    info = CodeInfo(commit="abc", dirty=False, migrations={"vault": "0003_x.py"})
    return samples.manifest(started_at=WHEN, code=info if code else None)


def _plan(full: bool = True) -> Any:
    from recoverctl.core.restore_plan import CurrentDb

    if not full:
        return samples.restore_plan(
            backup_format="sql", backup_created=None, backup_stack=None, backup_tables=None,
            backup_rows=None, current=CurrentDb(exists=False, tables=12, rows=41, size=9000),
            app_services=(), safety_backup=False,
        )  # fmt: skip
    return samples.restore_plan(
        backup_created=ELSEWHERE, backup_stack="prod",
        app_services=("backend", "worker"), leftovers=("vault__restore_new_1",),
        notes=("the code is older",),
    )  # fmt: skip


def _record(full: bool = True) -> Any:
    from recoverctl.core.drill import CheckRow, DrillError, DrillRecord, StepTime

    return DrillRecord(
        result="failed" if full else "passed",
        project="vault-dev",
        drill_project="vault-drill",
        stack="dev",
        source="target nas" if full else "local",
        backup="backup_2026-01-02_030405.dump",
        backup_sha256="ab" * 32 if full else None,
        backup_created=WHEN if full else None,
        started_at=WHEN,
        finished_at=ELSEWHERE,
        recovery_seconds=12.345 if full else None,
        seconds=20.5,
        steps=(StepTime(step="restore", seconds=1.5),) if full else (),
        checks=(
            CheckRow(name="db", status="fail", evidence="no", fix="fix"),
            CheckRow(name="app", status="ok", evidence="yes"),
        )
        if full
        else (),
        error=DrillError(code="checks_failed", message="bad", hint="h", details="d")
        if full
        else None,
        leftovers=("vol",) if full else (),
        recoverctl_version="0.1.0",
    )


def _pushed() -> Any:
    from recoverctl.errors import ErrorCode, RecoverctlError
    from recoverctl.services.offsite import Copy, PushResult

    failed = RecoverctlError("down", "start it", code=ErrorCode.TARGET_UNREACHABLE)
    return (
        PushResult(
            Path("/p/b.dump"),
            (
                Copy("nas", "s3://b", "b.dump", "pushed", "age", 30, "ef" * 32, 1.234, ("x",)),
                Copy("usb", "/mnt", "b.dump", "failed", "none", error=failed),
            ),
        ),
        PushResult(Path("/p/c.dump"), (Copy("nas", "s3://b", "c.dump", "present", "age", 3),)),
    )


def _remote(name: str = "backup_2026-01-02_030405.dump") -> Any:
    from recoverctl.core.offsite import RemoteManifest, StoredObject

    return RemoteManifest(
        backup=name,
        format="custom",
        created_at=WHEN,
        uploaded_at=ELSEWHERE,
        plain_size=2048,
        encryption="age",
        recipients=("age1x",),
        data=StoredObject(name=name + ".age", size=2100, sha256="ef" * 32),
        manifest=StoredObject(name=name + ".json.age", size=300, sha256="12" * 32),
        recoverctl_version="0.1.0",
        project="vault-dev",
        stack="dev",
    )


def _target_listing(full: bool = True) -> Any:
    from recoverctl.core.offsite import Listing, ObjectInfo, RemoteBackup
    from recoverctl.services.offsite import TargetListing

    name = "backup_2026-01-02_030405.dump"
    objs = (ObjectInfo(name + ".age", 2100, WHEN), ObjectInfo(name + ".json.age", 300, WHEN))
    backups = (
        RemoteBackup(name, True, _remote(name), objs),
        RemoteBackup(
            "backup_2026-01-01_000000.sql",
            False,
            None,
            (ObjectInfo("backup_2026-01-01_000000.sql.partial", 7, WHEN),),
            ("no remote manifest",),
        ),
        RemoteBackup("odd.dump", False, None, (), ("not ours",)),
    )
    listing = Listing(
        backups[:2] if full else (),
        (ObjectInfo("notes.txt", 3, WHEN),) if full else (),
        backups[2:] if full else (),
    )
    return TargetListing("nas", "s3://b", "age" if full else "none", listing, WHEN)


def _pulled() -> Any:
    from recoverctl.services.offsite import Pulled

    return Pulled(
        "nas",
        "s3://b",
        Path("/p/backups/backup_2026-01-02_030405.dump"),
        Path("/p/backups/backup_2026-01-02_030405.dump.json"),
        _manifest(),
        _remote(),
        4.567,
    )


def _env_pushed(done: bool = False) -> Any:
    from recoverctl.actions.envfiles import EnvPushDone
    from recoverctl.errors import ErrorCode, RecoverctlError
    from recoverctl.services.envcopy import EnvCopy, EnvPushResult

    failed = RecoverctlError("down", None, code=ErrorCode.TARGET_UNREACHABLE)
    copies = (
        EnvCopy("nas", "s3://b", "pushed", (".env", ".env.prod"), 10, 0.126, ("old.age",)),
        EnvCopy("usb", "/mnt", "unchanged"),
        EnvCopy("far", "sftp://x", "failed", error=failed),
    )
    if done:
        return EnvPushDone("vault-dev", (".env",), copies, failed)
    return EnvPushResult("vault-dev", (".env", ".env.prod"), copies)


def _doctor(full: bool = True) -> Any:
    from recoverctl.services.doctor import DoctorReport

    return DoctorReport("vault-dev", "dev", _checks() if full else (), 1.2345)


def _check_list() -> Any:
    from recoverctl.services.doctor import CheckList
    from recoverctl.services.doctor.framework import CheckSpec, Group, Need

    def run(_: Any) -> None:
        return None

    return CheckList(
        (
            CheckSpec("env.file", Group.ENV, run, "the env file is there"),
            CheckSpec(
                "service", Group.STACK, run, "each service runs", (Need.ENGINE,), Need.DB, "service"
            ),
            CheckSpec("db.size", Group.STACK, run, "room", (Need.DB, Need.APP_PORT)),
        )
    )


def _routine(full: bool = True) -> Any:
    from recoverctl.actions.routine import RoutineReport
    from recoverctl.errors import ErrorCode, RecoverctlError
    from recoverctl.services.routine import BaseBackupRun, PitrReport, StepRecord

    pitr = PitrReport(
        archive_lag_seconds=2.345,
        archive_failing=False,
        repos=(
            BaseBackupRun("nas", "diff", "20260109-120000F_20260110-030000D", True, True),
            BaseBackupRun("cloud", None, None, False, False),
        ),
    )
    steps = (
        StepRecord(name="backup", status="ok", seconds=3.25, detail="b.dump"),
        StepRecord(name="push", status="failed", seconds=1, detail="down"),
        StepRecord(name="prune", status="skipped"),
    )
    return RoutineReport(
        "vault-dev",
        "prod" if full else "dev",
        ELSEWHERE,
        12.3456,
        steps if full else (),
        Path("/p/backups/b.dump") if full else None,
        RecoverctlError("down", code=ErrorCode.TARGET_UNREACHABLE) if full else None,
        ("w",) if full else (),
        pitr if full else None,
    )


def _cases() -> dict[str, Callable[[], Any]]:
    from recoverctl.actions.backup import BackupDone
    from recoverctl.actions.identity import NewIdentity
    from recoverctl.actions.init import InitResult
    from recoverctl.actions.keys import KeyCheckResult
    from recoverctl.actions.prune import PruneResult
    from recoverctl.actions.push import PushReport
    from recoverctl.actions.recover import RecoverResult
    from recoverctl.actions.schedule import Installation, ScheduleResult
    from recoverctl.actions.stack import DownResult, UpResult
    from recoverctl.actions.verify import OffsiteReport
    from recoverctl.core.keyfile import KeyFile
    from recoverctl.services.catalog import BackupEntry, Listing
    from recoverctl.services.doctor import CheckList
    from recoverctl.services.drill import DrillResult
    from recoverctl.services.dump import BackupResult
    from recoverctl.services.envcopy import EnvCopy, EnvPullResult, EnvPushResult
    from recoverctl.services.restore import RestoreResult
    from recoverctl.services.retention import Item, ScopePlan, ScopeResult
    from recoverctl.services.verification import VerifyReport

    entry = BackupEntry(
        Path("/p/backups/b.dump"), 2048, ELSEWHERE, "custom", "dev", "deep ok", WHEN
    )
    bare_entry = BackupEntry(Path("/p/backups/c.sql"), 0, WHEN, "sql", "prod", "never", None)
    items = (
        Item("b.dump", ELSEWHERE, "deep ok", 10, ("newest", "daily")),
        Item("c.dump", WHEN, "never", 20, ()),
    )
    scope = ScopeResult(
        ScopePlan("local", "/p/backups", "keep 7 daily", items, ("x.json",)),
        ("c.dump",),
        ("x.json",),
    )
    bare_scope = ScopeResult(ScopePlan("nas", "s3://b", "keep all", ()), (), ())
    install = Installation("systemd", ("a.timer", "a.service"), "*-*-* 03:00", "tomorrow", True)
    return {
        "check": lambda: _checks(),
        "stack_status": lambda: _status(),
        "stack_status_empty": lambda: _status(False),
        "up": lambda: UpResult(_status(), True, 31.04, Path("/p/backups/b.dump")),
        "up_bare": lambda: UpResult(_status(False), False, 2),
        "down": lambda: DownResult("vault-dev", "dev", True, Path("/p/n.dump"), Path("/p/s.dump")),
        "down_bare": lambda: DownResult("vault-dev", "prod", False, None),
        "keys_check": lambda: KeyCheckResult(
            Path("/safe/k.zkkey.json"), "sha256:" + "cd" * 32, 2048, 600000, True, "alice", 5, 3, 3
        ),
        "keys_check_bare": lambda: KeyCheckResult(Path("k"), "sha256:" + "cd" * 32, 4096, 1, False),
        "keyfile": lambda: KeyFile(
            "sha256:" + "cd" * 32, 2048, ELSEWHERE, 600000, b"k", b"s", b"i", b"w"
        ),
        "manifest": lambda: _manifest(),
        "manifest_bare": lambda: _manifest(False),
        "backup": lambda: BackupResult(
            Path("/p/b.dump"), Path("/p/b.dump.json"), _manifest(), ("smaller",)
        ),
        "backup_bare": lambda: BackupResult(Path("/p/b.dump"), Path("/p/b.dump.json"), _manifest()),
        "verify": lambda: VerifyReport(
            Path("/p/b.dump"), "custom", True, _checks(), _manifest(), 0.456
        ),
        "verify_bare": lambda: VerifyReport(Path("/p/b.dump"), None, False, (), None, 1),
        "offsite_verify": lambda: OffsiteReport(
            "nas", "s3://b", "b.dump", True, True, "custom", _checks(), 2.345
        ),
        "offsite_verify_bare": lambda: OffsiteReport(
            "nas", "s3://b", "b.dump", False, False, None, (), 0
        ),
        "listing": lambda: Listing(
            Path("/p/backups"), "dev", (entry, bare_entry), ("b.partial",), _record()
        ),
        "listing_drill_passed": lambda: Listing(Path("/p/backups"), "dev", (), (), _record(False)),
        "listing_bare": lambda: Listing(Path("/p/backups"), "dev", (), ()),
        "restore_plan": lambda: _plan(),
        "restore_plan_bare": lambda: _plan(False),
        "restore": lambda: RestoreResult(
            _plan(),
            Path("/p/safety.dump"),
            12,
            40,
            3.456,
            (("load", 1.555), ("swap", 2)),
            ("x: 1 -> 2",),
            "vault__old",
            0.844,
        ),
        "restore_bare": lambda: RestoreResult(_plan(False), None, 0, 0, 3, ()),
        "recover": lambda: RecoverResult(
            "vault-dev",
            "dev",
            Path("/p/b.dump"),
            None,
            _checks(),
            "http://127.0.0.1:8000",
            42.06,
            (("bringing the stack up", 12.5), ("restore: swapping", 0.25)),
            (Path("/p/.env"),),
            40.04,
        ),
        "recover_bare": lambda: RecoverResult("vault-dev", "prod", None, "no backup", (), None, 1),
        "init": lambda: InitResult(
            Path("/p/.env"),
            "prod",
            ("SECRET_KEY",),
            {"backend": "img:1", "db": None},
            "local",
            ("vault.example",),
            ("https://vault.example",),
            8443,
            ("start it",),
            ("weak",),
        ),
        "init_bare": lambda: InitResult(
            Path("/p/.env"), "dev", (), {}, "official", (), (), 8000, ()
        ),
        "new_identity": lambda: NewIdentity(Path("/safe/id.txt"), "age1" + "q" * 58),
        "drill": lambda: DrillResult(_record(), Path("/p/backups/drills/DRILL-x.json"), ("w",)),
        "drill_bare": lambda: DrillResult(_record(False), None),
        "prune": lambda: PruneResult("dev", False, (scope, bare_scope)),
        "prune_bare": lambda: PruneResult("prod", True, ()),
        "schedule": lambda: ScheduleResult(
            "install",
            "vault-dev",
            "prod",
            "recoverctl-vault",
            (install, Installation("crontab", ("crontab of u",), "0 3 * * *", None, None)),
            ("recoverctl", "routine"),
            {"a.timer": "[Timer]"},
            ("old.timer",),
            {
                "ok": False,
                "exit_status": 3,
                "error_code": "target_unreachable",
                "message": "down",
                "started_at": WHEN.isoformat(),
                "finished_at": ELSEWHERE.isoformat(),
                "backup": None,
                "last_success_at": None,
            },
            ("w",),
        ),
        "schedule_bare": lambda: ScheduleResult("status", "vault-dev", "dev", "n", ()),
        "push": lambda: PushReport(_pushed()),
        "push_bare": lambda: PushReport(()),
        "backup_done": lambda: BackupDone(
            BackupResult(Path("/p/b.dump"), Path("/p/b.dump.json"), _manifest(), ("smaller",)),
            _pushed()[0],
            EnvPushResult(
                "vault-dev", (".env",), (EnvCopy("nas", "s3://b", "pushed", (".env",), 10, 0.126),)
            ),
        ),
        "backup_done_bare": lambda: BackupDone(
            BackupResult(Path("/p/b.dump"), Path("/p/b.dump.json"), _manifest())
        ),
        "target_listing": lambda: _target_listing(),
        "target_listing_bare": lambda: _target_listing(False),
        "pulled": lambda: _pulled(),
        "env_push": lambda: _env_pushed(),
        "env_push_done": lambda: _env_pushed(True),
        "env_push_bare": lambda: EnvPushResult("vault-dev", (), ()),
        "env_pull": lambda: EnvPullResult(
            "vault-dev",
            "nas",
            "s3://b",
            ELSEWHERE,
            (Path("/p/.env"),),
            (Path("/p/.env.prod"),),
            ("key.json: no key_file set",),
            0.555,
        ),
        "env_pull_bare": lambda: EnvPullResult("vault-dev", "nas", "/mnt", WHEN, (), (), (), 2),
        "doctor": lambda: _doctor(),
        "doctor_bare": lambda: _doctor(False),
        "doctor_list": lambda: _check_list(),
        "doctor_list_bare": lambda: CheckList(()),
        "routine": lambda: _routine(),
        "routine_bare": lambda: _routine(False),
    }


def _old(value: Any) -> Any:
    """The JSON as the CLI made it before: to_json, else the dataclass's fields."""
    import dataclasses

    if isinstance(value, tuple):
        return [_old(v) for v in value]
    if hasattr(value, "to_json"):
        return value.to_json()
    return dataclasses.asdict(value)


def _bytes(document: Any) -> str:
    # As cli/render.py writes the envelope.
    return json.dumps(document, indent=2, default=str)


@pytest.mark.parametrize("case", sorted(_cases()))
def test_a_result_keeps_its_json(case: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    value = _cases()[case]()
    items = value if isinstance(value, tuple) else (value,)
    made = [json_result.to_json(v) for v in items]
    made_doc = made if isinstance(value, tuple) else made[0]
    assert made_doc == golden[case]
    assert _bytes(made_doc) == _bytes(golden[case])


def test_every_case_has_its_golden_output() -> None:
    assert sorted(json.loads(GOLDEN.read_text())) == sorted(_cases())


if __name__ == "__main__":  # how json_results.json was made, from the to_json methods
    cases = _cases()
    doc = {k: json.loads(json.dumps(_old(cases[k]()), default=str)) for k in sorted(cases)}
    GOLDEN.write_text(json.dumps(doc, indent=2) + "\n")
