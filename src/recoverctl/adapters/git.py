"""git, for hygiene checks only: what is ignored, tracked, or was ever committed."""

from __future__ import annotations

from pathlib import Path

from recoverctl.adapters import process
from recoverctl.errors import CommandFailed

TIMEOUT = 60


def _git(repo: Path, *args: str) -> process.Completed:
    return process.run(("git", "-C", str(repo), *args), check=False, timeout=TIMEOUT)


def toplevel(folder: Path) -> Path | None:
    try:
        done = _git(folder, "rev-parse", "--show-toplevel")
    except CommandFailed:
        return None  # git is not installed
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def ignored(repo: Path, paths: list[str]) -> set[str]:
    """Which of paths the ignore rules cover, whether or not they are tracked."""
    done = _git(repo, "check-ignore", "--no-index", "--", *paths)
    return {line.strip() for line in done.stdout.splitlines() if line.strip()}


def tracked(repo: Path, pathspecs: list[str]) -> list[str]:
    done = _git(repo, "ls-files", "--", *pathspecs)
    return [line for line in done.stdout.splitlines() if line]


def added_in_history(repo: Path, pathspecs: list[str]) -> list[tuple[str, str]]:
    """(commit, path) for every commit, on any branch, that added a matching file."""
    done = _git(
        repo, "log", "--all", "--diff-filter=A", "--format=@%h", "--name-only", "--", *pathspecs
    )
    found: list[tuple[str, str]] = []
    commit = ""
    for line in done.stdout.splitlines():
        if line.startswith("@"):
            commit = line[1:]
        elif line.strip():
            found.append((commit, line.strip()))
    return found


def code_state(repo: Path, pathspec: str) -> tuple[str, bool] | None:
    """HEAD's commit, and whether pathspec has uncommitted changes (untracked files
    included: a new migration not yet committed is one); None unless repo's git tracks
    pathspec (a project copied somewhere under another repository is not its checkout)."""
    try:
        tracked = _git(repo, "ls-files", "--", pathspec)
    except CommandFailed:
        return None  # git is not installed
    if tracked.returncode != 0 or not tracked.stdout.strip():
        return None
    head = _git(repo, "rev-parse", "--verify", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", pathspec)
    if head.returncode != 0 or status.returncode != 0:
        return None
    changed = [line for line in status.stdout.splitlines() if not line.endswith(".pyc")]
    return head.stdout.strip(), bool(changed)
