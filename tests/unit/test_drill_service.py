"""services/drill.py over stand-ins for the engine, compose and the restore: the drill stack
is removed and the drill recorded whatever happens (success, a failing check, a failed
step, a bug, Ctrl-C, SIGTERM's KeyboardInterrupt, a dead engine at the end), and what can
be refused is refused before anything starts. tests/e2e/test_drill_e2e.py runs the real one."""

from __future__ import annotations

import json
import shutil
import signal
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from recoverctl.core.checks import Check
from recoverctl.core.drill import DrillRecord
from recoverctl.core.keyfile import KeyFileError, parse_keyfile
from recoverctl.core.manifest import Manifest
from recoverctl.errors import EngineError, ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import doctor, keys, offsite, restore
from recoverctl.services import drill as drills
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings, resolve_settings

NOW = datetime.now(UTC)

REPO = Path(__file__).resolve().parents[2]
VECTOR = json.loads((REPO / "tests" / "vectors" / "zkkey-v1.json").read_text())
MANIFEST = Manifest(
    file="backup_2026-11-01_030000.dump",
    sha256="ab" * 32,
    size=5,
    format="custom",
    database="vault",
    project="vault-dev",
    stack="dev",
    server_version="16.4",
    pg_dump_version="16.4",
    tables={"public.auth_user": 2},
    migrations={"vault": "0003_x"},
    started_at=datetime(2026, 11, 1, 3, 0, tzinfo=UTC),
    duration_seconds=0.2,
    recoverctl_version="0.1.0",
)


class Engine:
    """remove_project is all the drill asks of the engine itself; the rest is stubbed."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.left: list[list[str]] = []  # what each call reports as left, in turn
        self.fail_at: int | None = None  # the call (0-based) that loses the engine
        self.on_remove: Callable[[], None] | None = None

    def remove_project(self, project: str) -> list[str]:
        call = len(self.removed)
        self.removed.append(project)
        if self.on_remove is not None:
            self.on_remove()
        if self.fail_at == call:
            raise EngineError("Lost the Docker engine while trying to list containers: gone")
        return self.left.pop(0) if self.left else []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("docker-compose.yml", "docker-compose.dev.yml"):
        shutil.copy(REPO / name, tmp_path / name)
    env = tmp_path / ".env"
    env.write_text("POSTGRES_DB=vault\n")
    env.chmod(0o600)
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    (backups / "backup_2026-11-01_030000.dump").write_bytes(b"PGDMP")
    (backups / "backup_2026-11-01_030000.dump.json").write_text(MANIFEST.model_dump_json())
    return tmp_path


def settings_for(project: Path, **env: str) -> Settings:
    return resolve_settings(
        project_dir=project, environ={"RECOVERCTL_CONFIG": str(project / "none.toml"), **env}
    )


class Stage:
    """What the drill's steps did, and where to make them fail."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, project: Path):
        self.project = project
        self.engine = Engine()
        self.calls: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.check_rows: tuple[Check, ...] = (
            Check("db.migrations", "ok", "no unapplied migration"),
            Check("app.admin", "ok", "loads"),
        )
        self.up_env: dict[str, str] | None = None
        monkeypatch.setattr(drills, "bring_up", self.bring_up)
        monkeypatch.setattr(restore, "prepare", self.prepare)
        monkeypatch.setattr(restore, "restore", self.restore)
        monkeypatch.setattr(doctor, "run", self.doctor)
        monkeypatch.setattr(keys, "open_sample", self.open_sample)
        monkeypatch.setattr(keys, "owner", self.owner)

    def _reach(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def bring_up(self, session: StackSession, **kwargs: Any) -> None:
        assert session.project == "vault-dev-drill"
        self.up_env = kwargs["env"]
        self._reach("up")

    def prepare(self, session: StackSession, spec: str, **kwargs: Any) -> Any:
        assert session.project == "vault-dev-drill" and kwargs == {"safety_backup": False}
        self._reach("prepare")
        return SimpleNamespace(spec=spec)

    def restore(self, prep: Any, session: StackSession, *, step: Callable[[str], None]) -> Any:
        step("creating vault__restore_x")
        self._reach("restore")
        step("waiting until the app is healthy")
        return SimpleNamespace(tables=12, rows=59, drift=())

    def doctor(self, session: StackSession, only: tuple[str, ...]) -> Any:
        assert session.project == "vault-dev-drill"
        assert set(only) == {"db.not_empty", "db.migrations", "app.admin", "app.key_check"}
        self._reach("checks")
        return SimpleNamespace(checks=self.check_rows)

    def open_sample(self, engine: Any, project: str, kf: Any, private_key: Any) -> keys.Opened:
        assert project == "vault-dev-drill"
        self._reach("open_sample")
        return keys.Opened("alice", 5, 3, 3)

    def owner(self, engine: Any, project: str, kf: Any) -> str:
        self._reach("owner")
        return "alice"

    def session(self) -> StackSession:
        return StackSession(settings_for(self.project), connect=lambda: self.engine)  # type: ignore[arg-type,return-value]

    def source(self) -> drills.Source:
        return drills.local_source(self.session().settings)

    def run(self, key: drills.KeyProof | None = None) -> drills.DrillResult:
        return drills.run_drill(self.session(), source=self.source(), key=key)

    def records(self) -> list[Path]:
        folder = self.project / "backups" / "drills"
        return sorted(folder.glob("DRILL-*.json")) if folder.exists() else []

    def record(self) -> DrillRecord:
        found = self.records()
        assert len(found) == 1, found
        return DrillRecord.model_validate_json(found[0].read_bytes())


@pytest.fixture
def stage(monkeypatch: pytest.MonkeyPatch, project: Path) -> Stage:
    return Stage(monkeypatch, project)


def test_a_drill_that_passes(stage: Stage) -> None:
    result = stage.run()
    assert result.ok and result.record.passed
    assert stage.calls == ["up", "prepare", "restore", "checks"]
    # An earlier drill's leftovers are looked for first; the stack is removed at the end.
    assert stage.engine.removed == ["vault-dev-drill", "vault-dev-drill"]
    assert stage.up_env == {"VAULT_HTTP_PORT": ""}  # a free loopback port, never the live one
    r = result.record
    assert (r.project, r.drill_project, r.stack, r.source) == (
        "vault-dev", "vault-dev-drill", "dev", "local")  # fmt: skip
    assert r.backup == "backup_2026-11-01_030000.dump"
    names = [s.step for s in r.steps]
    assert names[0].startswith("fetching the backup (local: backup_2026-11-01_030000.dump)")
    assert names[1] == "starting the drill stack vault-dev-drill"
    assert "restore: creating vault__restore_x" in names
    assert names[-2:] == ["checking the restored vault", "removing the drill stack vault-dev-drill"]
    assert r.recovery_seconds is not None and r.recovery_seconds <= r.seconds
    assert [c.name for c in result.checks] == ["rows", "db.migrations", "app.admin", "key.secrets"]
    assert result.checks[0].evidence == "12 tables, 59 rows, as in the manifest"
    assert (r.backup_sha256, r.backup_created) == ("ab" * 32, MANIFEST.started_at)
    assert result.checks[-1].status == "warn"  # no key export: not proven, not failed
    # The record: whole, private, and what to_json reports.
    assert result.path == stage.records()[0] and stage.record() == r
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(result.path.parent.stat().st_mode) == 0o700
    assert [p.name for p in result.path.parent.iterdir()] == [result.path.name]  # scratch gone
    data = result.to_json()
    assert data["ok"] is True and data["record"] == str(result.path)
    assert "record_version" not in data


def test_the_routine_reads_the_last_drill(stage: Stage) -> None:
    settings = stage.session().settings
    assert drills.last_drill(settings) is None
    assert not drills.drill_due(settings)  # drill_every unset: the routine never drills
    assert drills.drill_due(settings.model_copy(update={"drill_every": timedelta(days=7)}))
    stage.run()
    last = drills.last_drill(settings)
    assert last is not None and last.passed
    assert not drills.drill_due(settings.model_copy(update={"drill_every": timedelta(days=7)}))
    stage.check_rows = (Check("app.admin", "fail", "HTTP 500", "recoverctl logs backend"),)
    stage.run()
    assert drills.last_drill(settings, passed=True) == last
    newest = drills.last_drill(settings)
    assert newest is not None and newest.result == "failed"
    # Another stack's drills are not this one's.
    assert drills.last_drill(settings.model_copy(update={"stack": "prod"})) is None


def test_a_failing_check_fails_the_drill_and_keeps_the_report(stage: Stage) -> None:
    stage.check_rows = (Check("app.admin", "fail", "HTTP 500", "recoverctl logs backend"),)
    result = stage.run()
    assert not result.ok and result.record.result == "failed" and result.record.error is None
    assert result.record.recovery_seconds is not None  # it did come back, with a problem
    assert stage.engine.removed == ["vault-dev-drill"] * 2


@pytest.mark.parametrize("where", ["up", "prepare", "restore", "checks"])
def test_a_failed_step_is_recorded_and_the_stack_removed(stage: Stage, where: str) -> None:
    stage.fail[where] = RecoverctlError(
        "Loading the backup failed: bad", "Try another one.", code=ErrorCode.BACKUP_CORRUPT
    )
    result = stage.run()
    assert not result.ok and stage.engine.removed == ["vault-dev-drill"] * 2
    r = stage.record()
    assert r.result == "failed" and r.error is not None and r.error.code == "backup_corrupt"
    assert r.error.message.startswith("The drill failed while ")
    assert "Loading the backup failed: bad" in r.error.message
    assert r.error.message.endswith("The drill stack vault-dev-drill was removed.")
    if where != "up":  # a stack that did not come up has its own hint (below)
        assert r.error.hint == "Try another one."
    assert (r.recovery_seconds is None) == (where != "checks")


def test_a_restore_failure_is_told_for_the_drill(stage: Stage) -> None:
    """What a restore adds after the cause (its rollback, what to run on the live stack) is
    moot once the drill stack is gone: the cause, where it happened, and the drill's advice."""
    stage.fail["restore"] = RecoverctlError(
        "a query in the db container failed (exit 137). Rolling back could not finish (gone): "
        "vault still holds the previous data. Once the database answers: recoverctl up.",
        "Check `recoverctl logs db`.",
        code=ErrorCode.ROLLBACK_INCOMPLETE,
        details="psql: server closed the connection",
    )
    error = stage.run().record.error
    assert error is not None and error.code == "rollback_incomplete"
    assert error.message == (
        "The drill failed while restore: creating vault__restore_x: a query in the db container "
        "failed (exit 137). The drill stack vault-dev-drill was removed."
    )
    assert error.hint == drills.DRILL_HINT and error.details == "psql: server closed the connection"


def test_a_stack_that_does_not_come_up_says_so(stage: Stage) -> None:
    stage.fail["up"] = RecoverctlError(
        "Service backend exited (1).", "x", code=ErrorCode.STACK_UNHEALTHY
    )
    result = stage.run()
    error = result.record.error
    assert error is not None and error.code == "stack_unhealthy"
    assert "The drill stack did not come up: Service backend exited (1)" in error.message
    assert "run the drill again" in (error.hint or "")


@pytest.mark.parametrize(
    "interrupt", [KeyboardInterrupt(), Interrupted("Restore interrupted. Nothing was changed.")]
)
@pytest.mark.parametrize("where", ["up", "restore", "checks"])
def test_ctrl_c_and_sigterm_remove_the_stack_then_stop(
    stage: Stage, interrupt: BaseException, where: str
) -> None:
    stage.fail[where] = interrupt
    with pytest.raises(Interrupted) as caught:
        stage.run()
    assert caught.value.code is ErrorCode.INTERRUPTED
    assert "the drill stack vault-dev-drill was removed" in caught.value.message
    assert "live stack was not touched" in (caught.value.hint or "")
    assert stage.engine.removed == ["vault-dev-drill"] * 2
    assert stage.record().result == "interrupted"


def test_a_second_ctrl_c_cannot_cut_the_removal_short(stage: Stage) -> None:
    stage.fail["restore"] = KeyboardInterrupt()
    calls = {"n": 0}

    def sigint_on_removal() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            signal.raise_signal(signal.SIGINT)  # held off until the removal and record are done

    stage.engine.on_remove = sigint_on_removal
    with pytest.raises(Interrupted):
        stage.run()
    assert stage.record().result == "interrupted"


def test_a_bug_is_recorded_then_raised(stage: Stage) -> None:
    stage.fail["checks"] = ZeroDivisionError("x")
    with pytest.raises(ZeroDivisionError):
        stage.run()
    r = stage.record()
    assert r.result == "failed" and r.error is not None and r.error.code == "internal_error"
    assert stage.engine.removed == ["vault-dev-drill"] * 2


def test_an_engine_lost_at_the_end_is_told(stage: Stage) -> None:
    stage.engine.fail_at = 1
    result = stage.run()
    assert result.record.passed and not result.ok  # proven, but maybe not cleaned up
    assert result.record.leftovers[0].startswith("unknown: the engine could not say")


def test_leftovers_are_named_with_how_to_remove_them(stage: Stage) -> None:
    stage.engine.left = [[], ["volume vault-dev-drill_db-data"]]
    stage.fail["restore"] = RecoverctlError("x", code=ErrorCode.RESTORE_FAILED)
    result = stage.run()
    error = result.record.error
    assert (
        error is not None and "is not all removed: volume vault-dev-drill_db-data" in error.message
    )
    assert "docker compose -p vault-dev-drill down --volumes" in (error.hint or "")


def test_an_earlier_drill_that_will_not_go_stops_this_one(stage: Stage) -> None:
    stage.engine.left = [["container vault-dev-drill-db-1"]]
    with pytest.raises(RecoverctlError) as caught:
        stage.run()
    assert caught.value.code is ErrorCode.CLEANUP_INCOMPLETE
    assert stage.calls == [] and stage.records() == []


def test_refused_before_anything_starts(stage: Stage, project: Path) -> None:
    settings = stage.session().settings
    with pytest.raises(RecoverctlError) as no_backup:
        drills.local_source(settings.model_copy(update={"backup_dir": project / "none"}))
    assert no_backup.value.code is ErrorCode.BACKUP_NOT_FOUND
    (project / ".env").unlink()
    with pytest.raises(RecoverctlError) as no_env:
        stage.run()
    assert no_env.value.code is ErrorCode.ENV_INVALID
    assert stage.engine.removed == [] and stage.records() == []


def test_a_drill_from_an_offsite_copy(
    stage: Stage, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The target and identity are checked before anything starts; the copy is pulled into
    the drill's private scratch folder, which goes with the drill."""
    checked: list[tuple[str, Path | None]] = []
    pulled: list[tuple[str, str, Path | None, Path]] = []

    def check_source(session: StackSession, target: str, identity: Path | None) -> None:
        checked.append((target, identity))
        if target != "nas":
            raise RecoverctlError(
                "No target 'box' in the settings.", code=ErrorCode.TARGET_NOT_FOUND
            )

    def pull(
        session: StackSession, target: str, name: str, identity: Path | None, dest_dir: Path
    ) -> SimpleNamespace:
        pulled.append((target, name, identity, dest_dir))
        copy = dest_dir / "backup_2026-11-01_030000.dump"
        copy.write_bytes(b"PGDMP")
        return SimpleNamespace(path=copy)  # the one field of offsite.Pulled a drill reads

    monkeypatch.setattr(offsite, "check_source", check_source)
    monkeypatch.setattr(offsite, "pull", pull)
    session = stage.session()
    with pytest.raises(RecoverctlError) as unknown:
        drills.target_source(session, "box", None)
    assert unknown.value.code is ErrorCode.TARGET_NOT_FOUND and pulled == []
    source = drills.target_source(session, "nas", tmp_path / "id.txt")
    assert checked[-1] == ("nas", tmp_path / "id.txt") and pulled == []  # nothing yet
    result = drills.run_drill(session, source=source)
    assert result.ok and result.record.source == "target nas"
    ((target, name, identity, dest),) = pulled
    assert (target, name, identity) == ("nas", "latest", tmp_path / "id.txt")
    assert dest.parent == project_drills(stage) and not dest.exists()  # removed after the drill
    assert result.record.steps[0].step == "fetching the backup (target nas: latest)"


def test_a_drill_to_a_point_in_time(stage: Stage, monkeypatch: pytest.MonkeyPatch) -> None:
    """drill --to-time: [pitr] and archiving are required before anything starts; the dump
    of the cluster restored to the point lands in the drill's scratch folder, and the record
    keeps the point reached, not only the one asked for."""
    from recoverctl.core.pitrtime import PointInTime
    from recoverctl.services import pitr, pitr_restore

    session = stage.session()
    asked = PointInTime(False, NOW - timedelta(minutes=5), "2026-12-03 09:00:00 UTC", UTC)
    with pytest.raises(RecoverctlError) as off:
        drills.pitr_source(session, asked, None)
    assert off.value.code is ErrorCode.PITR_NOT_CONFIGURED and stage.engine.removed == []

    dumped: list[tuple[str | None, Path]] = []
    reached_at = NOW - timedelta(minutes=5, seconds=2)

    def dump_at_point(
        session: StackSession, point: PointInTime, target: str | None, folder: Path, **_: Any
    ) -> tuple[SimpleNamespace, pitr_restore.PointReached]:
        dumped.append((target, folder))
        copy = folder / "backup_2026-11-01_030000.dump"
        copy.write_bytes(b"PGDMP")
        reached = pitr_restore.PointReached(
            asked=point.said, asked_at=point.at, reached=reached_at,
            reached_said="2026-12-03 08:59:58 UTC", repo="nas", base_backup="20261203-0800F",
            seconds=12.345,
        )  # fmt: skip
        return SimpleNamespace(path=copy), reached

    monkeypatch.setattr(pitr, "require_enabled", lambda session: None)
    monkeypatch.setattr(pitr_restore, "repo_named", lambda s, t: SimpleNamespace(name=t or "nas"))
    monkeypatch.setattr(pitr_restore, "dump_at_point", dump_at_point)
    source = drills.pitr_source(session, asked, None)
    assert dumped == []  # nothing restored before the drill starts
    result = drills.run_drill(session, source=source)
    assert result.ok and result.record.source == "pitr nas"
    ((target, folder),) = dumped
    assert target == "nas" and folder.parent == project_drills(stage) and not folder.exists()
    point = result.record.point_in_time
    assert point is not None and point.reached == reached_at and point.asked_at == asked.at
    assert (point.repo, point.base_backup, point.restore_seconds) == ("nas", "20261203-0800F", 12.35)
    assert result.record.steps[0].step.startswith(
        "restoring the cluster to 2026-12-03 09:00:00 UTC from nas"
    )
    assert stage.record().point_in_time == point  # kept in the record file
    assert result.to_json()["point_in_time"]["reached_said"] == "2026-12-03 08:59:58 UTC"


def test_the_routine_drills_when_due(stage: Stage, tmp_path: Path) -> None:
    session = stage.session()
    assert drills.routine_drill(session) is None  # drill_every unset
    every = session.settings.model_copy(
        update={"drill_every": timedelta(days=7), "key_file": tmp_path / "gone"}
    )
    due = StackSession(every, connect=lambda: stage.engine)  # type: ignore[arg-type,return-value]
    first = drills.routine_drill(due)
    assert first is not None and first.ok  # a missing key export does not stop it
    assert first.checks[-1].name == "key.secrets" and first.checks[-1].status == "warn"
    assert drills.routine_drill(due) is None  # passed within 7 days


def project_drills(stage: Stage) -> Path:
    return stage.project / "backups" / "drills"


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "alice.zkkey.json"
    path.write_text(json.dumps(VECTOR["keyFile"]))
    path.chmod(0o600)
    return path


def test_the_key_export_opens_the_restored_secrets(stage: Stage, tmp_path: Path) -> None:
    settings = stage.session().settings
    assert drills.key_proof(settings, None, None) is None
    path = _key_file(tmp_path)
    with pytest.raises(KeyFileError):  # a wrong passphrase is refused before anything starts
        drills.key_proof(settings, path, "not it")
    proof = drills.key_proof(settings, path, VECTOR["testOnlyPassphrase"])
    assert proof is not None and proof.private_key is not None
    result = stage.run(proof)
    row = result.checks[-1]
    assert (row.name, row.status) == ("key.secrets", "ok")
    assert row.evidence == "opened 3 of 3 sampled secrets of alice (5 stored) with alice.zkkey.json"
    # Without the passphrase: only that the restored vault knows the key.
    bare = drills.KeyProof(path, parse_keyfile(path.read_text()))
    rows = {c.name: c for c in stage.run(bare).checks}
    assert rows["key.registered"].status == "ok" and rows["key.secrets"].status == "warn"


def test_a_key_that_opens_nothing_fails_the_drill(stage: Stage, tmp_path: Path) -> None:
    path = _key_file(tmp_path)
    stage.fail["open_sample"] = RecoverctlError(
        "Opened 1 of 3 sampled secrets of alice: the others were encrypted with another key.",
        "Restore them from a backup taken before they broke.",
        code=ErrorCode.KEY_MISMATCH,
    )
    result = stage.run(drills.KeyProof(path, parse_keyfile(path.read_text()), private_key=object()))  # type: ignore[arg-type]
    row = result.checks[-1]
    assert (row.name, row.status) == ("key.secrets", "fail") and "Opened 1 of 3" in row.evidence
    assert not result.ok and result.record.result == "failed"
