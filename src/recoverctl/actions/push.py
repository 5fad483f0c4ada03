"""push: copy local backups to the off-site targets again (after a target was down), or,
with --missing, every local backup a target lacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.core import naming
from recoverctl.core.progress import OnBytes, Step
from recoverctl.core.result import INTERNAL, JsonResult, computed
from recoverctl.errors import EXIT_OK, ErrorCode, RecoverctlError, UsageError
from recoverctl.services import catalog, offsite

# A push's copies, named here for the CLI.
from recoverctl.services.offsite import Copy as Copy
from recoverctl.services.offsite import PushResult
from recoverctl.services.session import StackSession

# A target failing for one of these fails the same way for every backup: it is not tried
# again in the same run (an unreachable server would cost its timeouts once per backup).
_TARGET_WIDE = {
    ErrorCode.TARGET_UNREACHABLE,
    ErrorCode.TARGET_REFUSED,
    ErrorCode.TARGET_NOT_FOUND,
    ErrorCode.ENCRYPTION_REQUIRED,
    ErrorCode.CONFIG_INVALID,
}


def _quiet(_: object) -> None:
    return None


@dataclass(frozen=True)
class PushReport(JsonResult):
    """error: the copies' failure (exit 3) once the report is shown; the envelope's error,
    not its result."""

    results: tuple[PushResult, ...] = field(metadata=INTERNAL)
    error: RecoverctlError | None = field(default=None, compare=False, metadata=INTERNAL)

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK

    @property
    @computed()
    def copies(self) -> tuple[Copy, ...]:
        return tuple(c for r in self.results for c in r.copies)

    @property
    @computed(after="")
    def ok(self) -> bool:
        return all(r.ok for r in self.results)


def push(
    session: StackSession,
    spec: str | None,
    *,
    targets: Sequence[str] | None = None,
    missing: bool = False,
    replace: bool = False,
    step: Step = _quiet,
    on_bytes: OnBytes | None = None,
) -> PushReport:
    """One backup (FILE or latest) to every target or those named; with missing, every
    local backup of this stack that a target lacks, newest first. A failed copy is the
    report's error (exit 3); what cannot start (no target, no backup) raises."""
    if missing and replace:
        raise UsageError(
            "--replace is for one backup, not --missing.",
            "recoverctl push FILE --target NAME --replace",
        )
    if missing and spec:
        raise UsageError(
            "Pass a backup or --missing, not both.",
            "recoverctl push latest, or recoverctl push --missing.",
        )
    names = offsite.target_names(session, targets)
    paths = _local_backups(session) if missing else [_resolve(session, spec or "latest")]
    results: list[PushResult] = []
    broken: dict[str, RecoverctlError] = {}
    with fsio.project_lock(session.project, "push"):
        for path in paths:
            live = [n for n in names if n not in broken]
            skipped = tuple(_skipped(session, n, path, broken[n]) for n in names if n in broken)
            if not live:
                results.append(PushResult(path, skipped))
                continue
            result = offsite.push_backup(
                session, path, targets=live, step=step, on_bytes=on_bytes, replace=replace
            )
            results.append(PushResult(path, result.copies + skipped))
            for c in result.failed:
                if c.error is not None and c.error.code in _TARGET_WIDE:
                    broken[c.target] = c.error
    report = PushReport(tuple(results))
    if not report.ok:
        return PushReport(report.results, offsite.failure(report.results))
    return report


def _resolve(session: StackSession, spec: str) -> Path:
    """FILE or latest, as everywhere; and a bare backup name means the one in backups/, as
    list --target and verify --target name it."""
    folder = session.settings.backup_dir
    bare = spec != "latest" and not Path(spec).exists() and naming.is_backup_name(spec)
    if bare and (folder / spec).is_file():
        return folder / spec
    return catalog.resolve_backup(session.settings, spec)


def _local_backups(session: StackSession) -> list[Path]:
    listing = catalog.list_backups(session.settings)
    found = [e.path for e in listing.entries if e.stack == session.settings.stack]
    if not found:
        raise RecoverctlError(
            f"No {session.settings.stack} backup with a manifest in {listing.folder}.",
            "Make one: recoverctl backup",
            code=ErrorCode.BACKUP_NOT_FOUND,
        )
    return found


def _skipped(session: StackSession, name: str, path: Path, error: RecoverctlError) -> Copy:
    return Copy(
        name,
        offsite.open_target(session, name).location,
        path.name,
        "failed",
        session.settings.targets[name].encryption,
        error=error,
    )
