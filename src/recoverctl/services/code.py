"""The vault code in the project folder: its commit and migration files, recorded in each
backup's manifest and compared with it before a restore (core/codematch.py)."""

from __future__ import annotations

from pathlib import Path

from recoverctl.adapters import git
from recoverctl.core import codematch
from recoverctl.core.codematch import CodeMatch
from recoverctl.core.manifest import CodeInfo, Manifest
from recoverctl.errors import RecoverctlError


def checkout_migrations(project_dir: Path) -> dict[str, tuple[str, ...]]:
    found = project_dir.glob(f"{codematch.CODE_ROOT}/*/migrations/*.py")
    return codematch.migrations_from_paths(p.relative_to(project_dir).as_posix() for p in found)


def code_info(project_dir: Path) -> CodeInfo:
    """What the manifest records; never fails a backup (unknown is an answer)."""
    try:
        latest = codematch.latest(checkout_migrations(project_dir))
        state = git.code_state(project_dir, codematch.CODE_ROOT)
    except (OSError, RecoverctlError):
        return CodeInfo()
    if state is None:
        return CodeInfo(migrations=latest)
    commit, dirty = state
    return CodeInfo(commit=commit, dirty=dirty, migrations=latest)


def match(manifest: Manifest | None, project_dir: Path) -> CodeMatch:
    """The backup's migrations this checkout lacks (none without a manifest to say)."""
    if manifest is None:
        return CodeMatch(())
    code = manifest.code
    return codematch.compare(
        manifest.migrations,
        checkout_migrations(project_dir),
        backup_code_apps=code.migrations if code else (),
        commit=code.commit if code else codematch.UNKNOWN,
        dirty=code.dirty if code else None,
    )
