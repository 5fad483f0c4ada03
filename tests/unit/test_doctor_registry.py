"""doctor's registry: each check declared once, selection by group, name or prefix, one
row per failed need, and the README's list of checks generated from it.

Run as `python -m tests.unit.test_doctor_registry` to rewrite the README's list."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoverctl.adapters.engine import Engine
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.errors import EngineError, ErrorCode, RecoverctlError, UsageError
from recoverctl.services import doctor
from recoverctl.services.doctor import REGISTRY, CheckSpec, Context, Group, Need
from recoverctl.services.doctor.framework import CheckFn
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- doctor-checks:start -->", "<!-- doctor-checks:end -->"


def readme_block() -> str:
    lines = ["| check | group | needs | what it checks |", "| --- | --- | --- | --- |"]
    for spec in REGISTRY:
        needs = ", ".join(spec.needs) or "nothing"
        lines.append(f"| `{spec.label}` | {spec.group} | {needs} | {spec.about} |")
    return "\n".join(lines)


def test_readme_lists_every_check() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1
    current = text.split(START)[1].split(END)[0].strip()
    assert current == readme_block(), (
        f"README.md's list of doctor's checks is out of date: put this between {START} and "
        f"{END} (or run python -m tests.unit.test_doctor_registry):\n\n{readme_block()}"
    )


def test_every_check_is_declared_once() -> None:
    names = [s.name for s in REGISTRY]
    assert len(names) == len(set(names))
    # No name is a prefix of another's rows: --only and row names stay unambiguous.
    per_item = [s.name for s in REGISTRY if s.each]
    assert not [n for n in names for p in per_item if n.startswith(p + ".")]
    for spec in REGISTRY:
        assert spec.about and spec.about.endswith("."), spec
        assert "\n" not in spec.about and "|" not in spec.about, spec


def test_every_group_has_checks_in_registry_order() -> None:
    assert doctor.GROUPS == tuple(Group) == (
        "env",
        "git",
        "key",
        "stack",
        "postgres",
        "backups",
        "targets",
        "pitr",
    )
    groups = [s.group for s in REGISTRY]
    assert sorted(set(groups), key=groups.index) == list(Group)
    # Grouped: a group's checks are not scattered through the registry.
    assert groups == sorted(groups, key=list(Group).index)


def test_every_missing_need_has_a_check_that_says_so() -> None:
    gated = {s.gates for s in REGISTRY if s.gates}
    assert gated == {
        Need.ENV_FILE,
        Need.GIT,
        Need.KEY_FILE,
        Need.VALID_KEY,
        Need.ENGINE,
        Need.PITR,
    }
    for spec in REGISTRY:
        if spec.gates:  # the gate shares its group with what it gates
            assert any(
                spec.gates in other.all_needs and other.group == spec.group
                for other in REGISTRY
                if other is not spec
            ), spec


def names(specs: tuple[CheckSpec, ...]) -> list[str]:
    return [s.name for s in specs]


def test_select() -> None:
    assert doctor.select() == REGISTRY
    assert names(doctor.select(groups=("key",))) == [
        s.name for s in REGISTRY if s.name.startswith("key.")
    ]
    assert names(doctor.select(only=["db"])) == [
        "db.answers",
        "db.not_empty",
        "db.leftovers",
        "db.migrations",
    ]
    assert names(doctor.select(only=["engine", "env.mode"])) == ["env.mode", "engine"]
    assert names(doctor.select(only=["service.db"])) == ["service"]
    stack = doctor.select(only=["stack"])
    assert {s.group for s in stack} == {"stack"} and "engine" in names(stack)
    # groups and only together: what both allow (recover asks for stack and key, then names).
    assert names(doctor.select(groups=("stack",), only=["key", "app"])) == [
        "app.admin",
        "app.key_check",
    ]


@pytest.mark.parametrize("selector", ["gut", "env.", "db.answer", "servic"])
def test_select_refuses_what_names_no_check(selector: str) -> None:
    with pytest.raises(UsageError) as caught:
        doctor.select(only=[selector])
    assert caught.value.code == ErrorCode.USAGE
    assert "recoverctl doctor --list" in (caught.value.hint or "")
    with pytest.raises(UsageError):
        doctor.select(groups=("stack", selector))


# --- the runner: one row per failed need, never a stop --------------------------------------


def settings(root: Path) -> Settings:
    return Settings(
        project_dir=root,
        compose_file=root / "docker-compose.dev.yml",
        env_file=root / ".env",
        backup_dir=root / "backups",
    )


class DeadEngine:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Engine:
        self.calls += 1
        raise EngineError("Cannot reach the Docker engine at nowhere", "Start it")


@pytest.fixture
def dead(tmp_path: Path) -> tuple[Context, DeadEngine]:
    connect = DeadEngine()
    return Context(StackSession(settings(tmp_path), connect=connect)), connect


def spec(
    name: str,
    run: CheckFn,
    needs: tuple[Need, ...] = (),
    gates: Need | None = None,
    each: str = "",
) -> CheckSpec:
    return CheckSpec(name, Group.STACK, run, "About.", needs, gates, each)


def engine_version(ctx: Context) -> Finding:
    return Finding(OK, str(ctx.engine().version()))


def never(ctx: Context) -> Finding:
    raise AssertionError("ran although what it needs is missing")


def test_a_dead_engine_is_one_row_when_its_check_runs(dead: tuple[Context, DeadEngine]) -> None:
    ctx, connect = dead
    gate = spec("t.engine", engine_version, (Need.ENGINE,), gates=Need.ENGINE)
    users = [spec("t.db", never, (Need.DB,)), spec("t.port", never, (Need.APP_PORT,))]
    rows = doctor.run_checks(ctx, [gate, *users])
    assert [(r.name, r.status) for r in rows] == [("t.engine", FAIL)]
    assert rows[0].evidence == "Cannot reach the Docker engine at nowhere"
    assert rows[0].fix == "Start it"
    # Without the engine's own check, each check that needs it says why it did not run.
    rows = doctor.run_checks(ctx, users)
    assert [(r.name, r.status) for r in rows] == [("t.db", FAIL), ("t.port", FAIL)]
    assert connect.calls == 1  # the failure was kept, not retried per check


def test_a_failing_check_stops_no_other(dead: tuple[Context, DeadEngine]) -> None:
    ctx, _ = dead

    def broken(ctx: Context) -> Finding:
        raise RecoverctlError("it broke\n  badly", code=ErrorCode.COMMAND_FAILED)

    rows = doctor.run_checks(
        ctx, [spec("t.a", broken), spec("t.b", lambda ctx: Finding(WARN, "fine", "later"))]
    )
    assert [(r.name, r.status, r.evidence) for r in rows] == [
        ("t.a", FAIL, "it broke badly"),
        ("t.b", WARN, "fine"),
    ]


def test_a_missing_file_is_said_by_its_gate_else_not_checked(
    dead: tuple[Context, DeadEngine],
) -> None:
    ctx, _ = dead
    needs_env = spec("t.env_user", never, (Need.ENV_FILE,))
    rows = doctor.run_checks(ctx, [needs_env])
    assert [(r.name, r.status, r.evidence) for r in rows] == [
        ("t.env_user", WARN, "not checked: .env is missing")
    ]
    env_file = next(s for s in REGISTRY if s.gates == Need.ENV_FILE)
    rows = doctor.run_checks(ctx, [env_file, needs_env])
    assert [(r.name, r.status) for r in rows] == [(env_file.name, FAIL)]
    assert rows[0].fix.startswith("cp .env.example .env && chmod 600 .env")


def test_a_check_per_item_names_its_rows(dead: tuple[Context, DeadEngine]) -> None:
    ctx, _ = dead
    per = spec(
        "t.svc", lambda ctx: {"a": Finding(OK, "up"), "b": Finding(FAIL, "down")}, each="svc"
    )
    assert per.label == "t.svc.<svc>"
    assert [r.name for r in doctor.run_checks(ctx, [per])] == ["t.svc.a", "t.svc.b"]
    assert [r.name for r in doctor.run_checks(ctx, [per], only=["t.svc.b"])] == ["t.svc.b"]


def test_doctor_takes_a_session_and_reports(tmp_path: Path) -> None:
    connect = DeadEngine()
    session = StackSession(settings(tmp_path), connect=connect)
    report = doctor.run(session, only=["engine", "env.file"])
    assert [(c.name, c.status) for c in report.checks] == [("env.file", FAIL), ("engine", FAIL)]
    assert not report.ok and report.stack == "dev"
    assert report.project == tmp_path.name  # no compose file to name it: the folder does
    # recover's call: groups only.
    report = doctor.run(session, groups=("stack", "key"))
    assert {c.name for c in report.checks} >= {"engine", "key.configured"}
    assert not [c for c in report.checks if c.name.startswith(("db.", "app.", "service"))]


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    README.write_text(f"{head}{START}\n{readme_block()}\n{END}{tail}", encoding="utf-8")
    print(f"wrote doctor's {len(REGISTRY)} checks into {README}")
