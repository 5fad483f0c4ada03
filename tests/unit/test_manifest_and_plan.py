from datetime import UTC, datetime

from recoverctl.core.manifest import VerifyRecord, VerifyResult, compare_counts, verify_state
from recoverctl.core.restore_plan import CurrentDb, RestorePlan, names_for

T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def rec(*results: VerifyResult) -> VerifyRecord:
    return VerifyRecord(file="b.dump", results=results)


def test_verify_states() -> None:
    assert verify_state(None) == ("never", None)
    quick = VerifyResult(kind="quick", ok=True, at=T0, sha256="a")
    deep = VerifyResult(kind="deep", ok=True, at=T0, sha256="a")
    assert verify_state(rec(quick)) == ("quick ok", T0)
    # A later quick check of the same bytes keeps the deep proof.
    assert verify_state(rec(deep, VerifyResult(kind="quick", ok=True, at=T1, sha256="a"))) == (
        "deep ok",
        T0,
    )
    # Changed bytes lose it; a failure always shows.
    assert (
        verify_state(rec(deep, VerifyResult(kind="quick", ok=True, at=T1, sha256="b")))[0]
        == "quick ok"
    )
    assert verify_state(rec(deep, VerifyResult(kind="quick", ok=False, at=T1))) == ("failed", T1)


def test_record_keeps_the_last_twenty() -> None:
    r = VerifyRecord(file="b")
    for i in range(25):
        r = r.add(VerifyResult(kind="quick", ok=True, at=T0, detail=str(i)))
    assert len(r.results) == 20 and r.results[-1].detail == "24"


def test_compare_counts() -> None:
    problems, compared = compare_counts({"a": 1, "b": None, "c": 2}, {"a": 1, "b": 7, "d": 0})
    assert compared == 1
    assert problems == ["table c is missing", "table d was not in the backup"]
    problems, _ = compare_counts({"a": 1}, {"a": 2})
    assert problems == ["table a has 2 rows, the backup had 1"]


def plan(**changes: object) -> RestorePlan:
    base: dict[str, object] = {
        "backup": "backups/b.dump", "backup_format": "custom", "backup_created": T0,
        "backup_stack": "dev", "backup_tables": 3, "backup_rows": 10, "project": "p",
        "stack": "dev", "database": "vault", "current": CurrentDb(True, 3, 9, 100),
        "scratch": "vault__restore_x", "keep_as": "vault__pre_restore_x",
        "app_services": ("backend",), "safety_backup": True, "leftovers": (),
    }  # fmt: skip
    base.update(changes)
    return RestorePlan(**base)  # type: ignore[arg-type]


def test_plan_steps_and_warnings() -> None:
    p = plan()
    # The safety copy comes after the load is proven and before the app stops.
    assert p.steps[2:4] == ("take a safety backup of vault (custom format)", "stop backend")
    assert "stop backend meanwhile" not in p.steps[1]
    assert any("swap in one transaction" in s for s in p.steps)
    assert p.steps[-1] == "compare row counts again; drop vault__pre_restore_x meanwhile"
    assert p.warnings == ()
    empty = plan(current=CurrentDb(False, 0, 0, 0), safety_backup=False)
    assert not any("safety" in s for s in empty.steps)
    # The app stops only once the loaded copy is proven: its downtime stays the same
    # whatever the database's size.
    assert empty.steps[1:3] == (
        "count every table of vault__restore_x: each must hold the rows its load reported "
        "and the manifest recorded; ANALYZE it",
        "stop backend",
    )
    assert "confined to it" in empty.steps[0] and "sha256" in empty.steps[0]
    assert "rename vault__restore_x -> vault" in empty.steps
    risky = plan(backup_stack="prod", safety_backup=False, leftovers=("vault__restore_old",))
    assert risky.warnings == (
        "this is a prod backup restored into the dev stack",
        "no safety backup: the current data cannot be brought back",
        "database vault__restore_old was left by an interrupted run; inspect or drop it",
    )
    assert plan(backup_stack=None).warnings[0].startswith("the backup has no manifest")
    # Without a manifest the plan promises only what it can check: the load against itself.
    foreign = plan(backup_stack=None).steps
    assert "manifest" not in foreign[0]
    assert foreign[1].endswith("(no manifest to compare with); ANALYZE it")
    assert foreign[-1] == "drop vault__pre_restore_x"


def test_names_fit_postgres_identifiers() -> None:
    scratch, keep, failed = names_for("v" * 80, T0)
    assert all(len(n.encode()) <= 63 for n in (scratch, keep, failed))
    assert names_for("vault", T0) == (
        "vault__restore_20261124_050000", "vault__pre_restore_20261124_050000",
        "vault__failed_restore_20261124_050000",
    )  # fmt: skip
