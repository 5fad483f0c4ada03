"""doctor's git group: env files, key exports and backups are ignored by git, not tracked,
never committed."""

from __future__ import annotations

from pathlib import Path

from recoverctl.adapters import git
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    Need,
    Unavailable,
)

checks = GroupChecks(Group.GIT)
GITIGNORE_ENTRIES = (
    ".env",
    ".env.production",
    "backups/",
    "frontend/node_modules/",
    "**/*.zkkey.json",
    "*.dump",
    "*.sql",
)


def _rel(ctx: Context) -> Path:
    project = ctx.settings.project_dir
    repo = ctx.repo()
    return project.relative_to(repo) if project != repo else Path()


def _pathspecs(rel: Path) -> list[str]:
    """Env files, key backups and backups, wherever they are (as .gitignore has it)."""
    base = "" if str(rel) == "." else f"{rel}/"
    return [
        f"{base}.env", f"{base}.env.production", f"{base}backups",
        ":(glob)**/*.zkkey.json", f":(glob){base}**/*.dump", f":(glob){base}**/*.sql",
        f":(glob){base}backups/**",
    ]  # fmt: skip


@checks.check("git.repo", gates=Need.GIT)
def _repo(ctx: Context) -> Finding:
    """The project is a git checkout (the hygiene checks below need one)."""
    try:
        repo = ctx.repo()
    except Unavailable as missing:
        return Finding(WARN, missing.evidence, missing.fix)
    return Finding(OK, f"a git checkout ({repo})")


@checks.check("git.ignored", needs=[Need.GIT])
def _ignored(ctx: Context) -> Finding:
    """Env files, key exports and backups are ignored by git."""
    rel = _rel(ctx)
    paths = [
        str(rel / ".env"), str(rel / ".env.production"), str(rel / "backups") + "/",
        str(rel / "key.zkkey.json"), str(rel / "backups" / "backup_x.dump"),
        str(rel / "backups" / "backup_x.sql"),
    ]  # fmt: skip
    covered = git.ignored(ctx.repo(), paths)
    missing = [p for p in paths if p not in covered and p.rstrip("/") not in covered]
    if missing:
        return Finding(
            FAIL,
            "not ignored by git: " + ", ".join(missing),
            "Add the playbook's entries to .gitignore (.env, .env.production, backups/, **/*.zkkey.json)",
        )
    return Finding(OK, "env files, key backups and backups/ are ignored")


@checks.check("git.tracked", needs=[Need.GIT])
def _tracked(ctx: Context) -> Finding:
    """No env file, key export or backup (.dump, .sql) is tracked."""
    found = git.tracked(ctx.repo(), _pathspecs(_rel(ctx)))
    if found:
        return Finding(
            FAIL,
            "tracked by git: " + ", ".join(found[:5]),
            "git rm --cached those files and commit; then change every secret they held",
        )
    return Finding(OK, "no env file, key backup or backup is tracked")


@checks.check("git.history", needs=[Need.GIT])
def _history(ctx: Context) -> Finding:
    """No env file, key export or backup was ever committed, on any branch."""
    found = git.added_in_history(ctx.repo(), _pathspecs(_rel(ctx)))
    if found:
        shown = ", ".join(f"{path} in {commit}" for commit, path in found[:5])
        return Finding(
            FAIL,
            f"committed in the past: {shown}",
            "Change every secret they held; rewrite history (git filter-repo) if the repo is shared",
        )
    return Finding(OK, "no env file, key backup or backup was ever committed")


@checks.check("git.gitignore", needs=[Need.GIT])
def _gitignore(ctx: Context) -> Finding:
    """.gitignore has the playbook's recommended entries."""
    path = ctx.repo() / ".gitignore"
    text = path.read_bytes().decode("utf-8", "replace") if path.is_file() else ""
    lines = set(text.splitlines())
    missing = [e for e in GITIGNORE_ENTRIES if e not in lines]
    if missing:
        return Finding(
            WARN,
            ".gitignore lacks " + ", ".join(missing),
            "Add those lines to .gitignore (the playbook's recommended list)",
        )
    return Finding(OK, ".gitignore has the playbook's recommended entries")
