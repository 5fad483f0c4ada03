"""core/codematch.py: which of a backup's migrations the checkout lacks, and what to check
out; services/code.py reading a real checkout (git in a temp folder); the manifest's
`code` field read back from old and new manifests."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recoverctl.core import codematch
from recoverctl.core.codematch import CodeMatch
from recoverctl.core.manifest import CodeInfo, Manifest
from recoverctl.services import code

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_migrations_from_paths() -> None:
    paths = [
        "vault/vault/migrations/0001_initial.py",
        "vault/vault/migrations/0002_secret_notes.py",
        "vault/vault/migrations/__init__.py",
        "vault/billing/migrations/0001_initial.py",
        "vault/vault/migrations/README.md",
        "vault/config/settings.py",
        "other/vault/migrations/0009_x.py",
        "vault/vault/migrations/deep/0003_x.py",
    ]
    assert codematch.migrations_from_paths(paths) == {
        "billing": ("0001_initial",),
        "vault": ("0001_initial", "0002_secret_notes"),
    }


def test_latest_by_number() -> None:
    found = {"vault": ("0010_b", "0002_a", "0009_c"), "empty": ()}
    assert codematch.latest(found) == {"vault": "0010_b"}


def test_the_same_code_matches() -> None:
    data = {"vault": "0002_b", "auth": "0012_alter_user_first_name_max_length"}
    checkout = {"vault": ("0001_a", "0002_b")}
    assert codematch.compare(data, checkout).ok


def test_newer_code_matches() -> None:
    # The app's start applies 0003 to the restored data: the usual upgrade.
    assert codematch.compare({"vault": "0002_b"}, {"vault": ("0001_a", "0002_b", "0003_c")}).ok


def test_older_code_lacks_the_datas_migration() -> None:
    found = codematch.compare({"vault": "0003_c"}, {"vault": ("0001_a", "0002_b")}, commit=SHA)
    assert found.missing == (("vault", "0003_c"),)
    assert found.message == (
        "its data has migration vault.0003_c, which this checkout lacks: "
        "the data is newer than the code"
    )
    assert found.hint("--allow-newer-data") == (
        "Check out the code the backup was made with: git checkout 0123456789ab; "
        "or pass --allow-newer-data to run this code over it anyway."
    )


def test_djangos_own_apps_are_not_compared() -> None:
    # auth's migrations come with the Django version the checkout pins, not with vault/.
    data = {"auth": "0099_from_a_newer_django", "vault": "0001_a"}
    assert codematch.compare(data, {"vault": ("0001_a",)}).ok


def test_an_app_removed_since_the_backup_counts() -> None:
    data = {"billing": "0004_x", "vault": "0001_a"}
    found = codematch.compare(data, {"vault": ("0001_a",)}, backup_code_apps=("billing", "vault"))
    assert found.missing == (("billing", "0004_x"),)
    # Without the backup's record of its code, billing could be one of Django's apps.
    assert codematch.compare(data, {"vault": ("0001_a",)}).ok


def test_a_branch_with_another_migration_of_the_same_number() -> None:
    found = codematch.compare({"vault": "0002_theirs"}, {"vault": ("0001_a", "0002_ours")})
    assert found.missing == (("vault", "0002_theirs"),)


def test_several_missing_are_all_named() -> None:
    found = codematch.compare(
        {"vault": "0003_c", "billing": "0002_b"},
        {"vault": ("0001_a",), "billing": ("0001_a",)},
    )
    assert found.names == "billing.0002_b, vault.0003_c"
    assert "migrations billing.0002_b, vault.0003_c" in found.message


def test_unknown_commit_names_the_file_to_look_for() -> None:
    found = CodeMatch((("vault", "0003_c"),))
    hint = found.hint("--allow-newer-data")
    assert "a commit that has vault/vault/migrations/0003_c.py" in hint
    assert "git log --all -- vault/vault/migrations/0003_c.py" in hint


def test_a_dirty_backup_checkout_is_said() -> None:
    found = CodeMatch((("vault", "0003_c"),), SHA, dirty=True)
    assert "uncommitted changes under vault/" in found.hint("--allow-newer-data")


# --- the manifest -----------------------------------------------------------------------


def manifest(**extra: object) -> Manifest:
    return Manifest.model_validate(
        {
            "file": "backup_2026-01-01_000000.dump",
            "sha256": "0" * 64,
            "size": 1,
            "format": "custom",
            "database": "vault",
            "project": "vault-dev",
            "stack": "dev",
            "server_version": "15",
            "pg_dump_version": "15",
            "tables": {},
            "migrations": {"vault": "0003_c"},
            "started_at": datetime(2026, 1, 1, tzinfo=UTC),
            "duration_seconds": 1.0,
            "recoverctl_version": "0.1.0",
            **extra,
        }
    )


def test_an_old_manifest_has_no_code() -> None:
    assert manifest().code is None


def test_the_code_round_trips() -> None:
    m = manifest(code={"commit": SHA, "dirty": False, "migrations": {"vault": "0003_c"}})
    again = Manifest.model_validate(m.to_json())
    assert again.code == CodeInfo(commit=SHA, dirty=False, migrations={"vault": "0003_c"})


# --- a real checkout --------------------------------------------------------------------


def write_migration(root: Path, app: str, name: str) -> None:
    folder = root / "vault" / app / "migrations"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").touch()
    (folder / f"{name}.py").write_text("# a migration\n")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write_migration(root, "vault", "0001_a")
    write_migration(root, "vault", "0002_b")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "x")
    return root


def test_code_info_of_a_clean_checkout(checkout: Path) -> None:
    info = code.code_info(checkout)
    assert info == CodeInfo(commit=git(checkout, "rev-parse", "HEAD"), dirty=False,
                            migrations={"vault": "0002_b"})  # fmt: skip


def test_a_new_migration_not_committed_is_dirty(checkout: Path) -> None:
    write_migration(checkout, "vault", "0003_c")
    info = code.code_info(checkout)
    assert info.dirty is True
    assert info.migrations == {"vault": "0003_c"}


def test_not_a_checkout(tmp_path: Path) -> None:
    write_migration(tmp_path, "vault", "0001_a")
    assert code.code_info(tmp_path) == CodeInfo(migrations={"vault": "0001_a"})


def test_a_copy_inside_another_repository_is_not_its_checkout(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "README").write_text("someone's home folder\n")
    git(tmp_path, "add", "README")
    git(tmp_path, "commit", "-qm", "x")
    write_migration(tmp_path / "copy", "vault", "0001_a")
    assert code.code_info(tmp_path / "copy").commit == "unknown"


def test_match_against_the_checkout(checkout: Path) -> None:
    backup = manifest(code={"commit": SHA, "dirty": False, "migrations": {"vault": "0003_c"}})
    found = code.match(backup, checkout)
    assert (found.missing, found.commit) == ((("vault", "0003_c"),), SHA)
    write_migration(checkout, "vault", "0003_c")
    assert code.match(backup, checkout).ok
    assert code.match(None, checkout).ok
