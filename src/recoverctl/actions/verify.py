"""verify: prove a backup is what its manifest says, whole, and (with --deep) restorable;
or (--pitr) the same of the pgBackRest repositories."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl.core.checks import FAIL, OK, Check, worst
from recoverctl.core.naming import Format
from recoverctl.core.progress import OnBytes, Step
from recoverctl.core.result import JsonResult, computed, meta
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services import pitr as pitr_svc
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport, verify_file

if TYPE_CHECKING:
    # Imported when run: a local verify never needs pgBackRest's machinery.
    from recoverctl.services.pitr_verify import PitrVerifyReport as PitrVerifyReport


def _no_progress(_: int) -> None:
    return None


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class OffsiteReport(JsonResult):
    """verify --target: a copy on an off-site target. Without an identity its sealed
    objects are read back and compared with what was uploaded; with one it is pulled to a
    scratch folder and verified as a local backup (quick or deep)."""

    target: str
    location: str
    backup: str
    decrypted: bool
    deep: bool
    format: Format | None
    checks: tuple[Check, ...]
    seconds: float = field(metadata=meta(digits=2))

    @property
    @computed(after="backup")
    def ok(self) -> bool:
        return worst(self.checks) != FAIL


def verify_offsite(
    session: StackSession,
    spec: str,
    *,
    target: str,
    identity: Path | None = None,
    deep: bool = False,
    on_bytes: OnBytes = _no_progress,
) -> OffsiteReport:
    # Imported here: a local verify (timed against a raw pg_restore) never needs it.
    from recoverctl.services import offsite

    identity = identity or session.settings.identity_file
    started = time.monotonic()
    if identity is None:
        if deep:
            raise RecoverctlError(
                "--deep restores the copy, which needs the private key to open it.",
                "Pass --identity FILE (or set RECOVERCTL_IDENTITY_FILE); without it, "
                "verify --target checks the sealed objects only.",
                code=ErrorCode.IDENTITY_INVALID,
            )
        sealed = offsite.check_sealed(session, target, spec, on_bytes=on_bytes)
        return OffsiteReport(
            sealed.target,
            sealed.location,
            sealed.backup,
            False,
            False,
            sealed.manifest.format if sealed.manifest else None,
            sealed.checks,
            sealed.seconds,
        )
    pulled = offsite.pull(session, target, spec, identity, offsite.scratch_dir(session))
    local = verify(session, str(pulled.path), deep=deep, on_bytes=on_bytes)
    fetched = Check(
        "offsite",
        OK,
        f"pulled from target {target}: sealed bytes as uploaded (sha256 "
        f"{pulled.remote.data.sha256[:12]}…), "
        + ("decrypted, " if pulled.remote.encryption == "age" else "in clear, ")
        + "the backup's sha256 as in its manifest",
    )
    return OffsiteReport(
        target,
        pulled.location,
        pulled.path.name,
        True,
        deep,
        local.format,
        (fetched, *local.checks),
        time.monotonic() - started,
    )


def verify(
    session: StackSession, spec: str, *, deep: bool = False, on_bytes: OnBytes = _no_progress
) -> VerifyReport:
    path = catalog.resolve_backup(session.settings, spec)
    return verify_file(session, path, deep=deep, on_bytes=on_bytes)


def verify_pitr(
    session: StackSession, *, target: str | None = None, deep: bool = False, step: Step = _quiet
) -> PitrVerifyReport:
    """The pgBackRest repositories (every [pitr] one, or target's): read back whole by
    pgBackRest, and with deep restored to their latest point in a throwaway and checked."""
    from recoverctl.actions.restore import local_zone
    from recoverctl.services import pitr_verify

    pitr_svc.require_enabled(session)
    return pitr_verify.verify(session, target, deep=deep, zone=local_zone(), step=step)
