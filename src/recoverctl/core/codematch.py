"""Does this checkout's code match a backup's data? Pure.

A new machine clones today's code, but the backup may come from other code. Django applies
the migrations a database lacks when the app starts, so code newer than the data is
normal; data newer than the code is not: the app would run models that do not know the
database's tables, and no later `migrate` can fix that. The manifest records the
database's latest applied migration per app (`migrations`) and the code it was taken
with (`code`: commit, and the checkout's latest migration file per app); this module
says which of the data's migrations the checkout lacks, and what to check out.

Only the project's own apps are compared (those with a vault/APP/migrations folder, in the
checkout or in the backup's code): Django's (auth, admin, sessions) come with the Django
version the checkout pins.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

UNKNOWN = "unknown"
CODE_ROOT = "vault"  # the vault's Django project, relative to the checkout


def migrations_from_paths(paths: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """app -> its migration names, from paths like vault/APP/migrations/0002_x.py."""
    found: dict[str, set[str]] = {}
    for raw in paths:
        path = PurePosixPath(raw)
        parts = path.parts
        if (
            len(parts) == 4
            and parts[0] == CODE_ROOT
            and parts[2] == "migrations"
            and path.suffix == ".py"
            and path.stem != "__init__"
        ):
            found.setdefault(parts[1], set()).add(path.stem)
    return {app: tuple(sorted(names)) for app, names in sorted(found.items())}


def latest(migrations: Mapping[str, Collection[str]]) -> dict[str, str]:
    """Each app's latest migration by name: Django numbers them, 0001_, 0002_, ..."""
    return {app: max(names) for app, names in migrations.items() if names}


def migration_path(app: str, name: str) -> str:
    return f"{CODE_ROOT}/{app}/migrations/{name}.py"


@dataclass(frozen=True)
class CodeMatch:
    """The data's migrations the checkout lacks, and the code the backup was taken with."""

    missing: tuple[tuple[str, str], ...]  # (app, migration)
    commit: str = UNKNOWN  # the backup's code; UNKNOWN when it was not a clean git checkout
    dirty: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def names(self) -> str:
        return ", ".join(f"{app}.{name}" for app, name in self.missing)

    @property
    def message(self) -> str:
        one = len(self.missing) == 1
        return (
            f"its data has migration{'' if one else 's'} {self.names}, which this checkout "
            "lacks: the data is newer than the code"
        )

    def hint(self, flag: str) -> str:
        app, name = self.missing[0]
        if self.commit != UNKNOWN:
            where = f"git checkout {self.commit[:12]}"
            if self.dirty:
                where += " (the backup was taken with uncommitted changes under vault/ too)"
        else:
            where = (
                f"a commit that has {migration_path(app, name)} "
                f"(git log --all -- {migration_path(app, name)})"
            )
        return f"Check out the code the backup was made with: {where}; or pass {flag} to run this code over it anyway."


def compare(
    data: Mapping[str, str],
    checkout: Mapping[str, Collection[str]],
    backup_code_apps: Iterable[str] = (),
    commit: str = UNKNOWN,
    dirty: bool | None = None,
) -> CodeMatch:
    """data: the backup's latest applied migration per app (manifest.migrations);
    checkout: every migration file per app here; backup_code_apps: the apps the backup's
    code had (manifest.code.migrations), so that an app since removed still counts."""
    apps = set(checkout) | set(backup_code_apps)
    missing = tuple(
        (app, name)
        for app, name in sorted(data.items())
        if app in apps and name not in checkout.get(app, ())
    )
    return CodeMatch(missing, commit, dirty)
