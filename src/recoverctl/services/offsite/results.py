"""What the off-site service hands back: a push's copies (and the error that carries them
when one failed), a target's listing, a sealed copy's checks, a pulled backup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from recoverctl.core import naming
from recoverctl.core.checks import FAIL, Check, worst
from recoverctl.core.manifest import Manifest
from recoverctl.core.offsite import Encryption, Listing, RemoteBackup, RemoteManifest
from recoverctl.errors import ErrorCode, RecoverctlError

CopyStatus = Literal["pushed", "present", "failed"]


# --- what a push did -----------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One backup on one target, after a push: pushed now, already there whole, or failed."""

    target: str
    location: str
    backup: str
    status: CopyStatus
    encryption: Encryption
    size: int = 0  # bytes stored on the target (its three objects)
    sha256: str | None = None  # of the data object as stored (sealed)
    seconds: float = 0.0
    removed: tuple[str, ...] = ()  # objects of incomplete copies removed on the way
    error: RecoverctlError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "location": self.location,
            "backup": self.backup,
            "status": self.status,
            "encryption": self.encryption,
            "size": self.size,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 2),
            "removed": list(self.removed),
            "error": None if self.error is None else self.error.brief(),
        }


@dataclass(frozen=True)
class PushResult:
    """A local backup pushed to targets: one Copy per target, in the order pushed."""

    backup: Path
    copies: tuple[Copy, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.copies)

    @property
    def failed(self) -> tuple[Copy, ...]:
        return tuple(c for c in self.copies if c.status == "failed")

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": str(self.backup),
            "ok": self.ok,
            "copies": [c.to_json() for c in self.copies],
        }


class OffsiteFailed(RecoverctlError):
    """The local backup is good; copying it to a target failed (exit 3). `results` holds
    every push made before the failure was raised, failed copies included."""

    default_code = ErrorCode.OFFSITE_FAILED

    def __init__(self, message: str, hint: str | None, results: Sequence[PushResult]):
        super().__init__(message, hint)
        self.results = tuple(results)


def failure(results: Sequence[PushResult], *, local: str = "is good here") -> OffsiteFailed:
    """One error for every failed copy: names the backup, each target and its cause."""
    failed = [c for r in results for c in r.failed]
    assert failed, "no failed copy to report"
    first = failed[0]
    assert first.error is not None
    backups = sorted({c.backup for c in failed})
    what = backups[0] if len(backups) == 1 else f"{len(backups)} backups"
    if len(failed) == 1:
        message = f"{what} {local}, but copying it off-site failed: {first.error.message}"
        hint = first.error.hint
    else:
        targets = sorted({c.target for c in failed})
        causes = "; ".join(
            f"{c.target}: {c.error.message if c.error else '?'}" for c in failed[:3]
        ) + (" ..." if len(failed) > 3 else "")
        message = (
            f"{what} {local}, but {len(failed)} copies to target "
            f"{', '.join(targets)} failed: {causes}"
        )
        hint = first.error.hint
    retry = "push again once fixed: recoverctl push " + (
        "--missing" if len(backups) > 1 else backups[0]
    )
    return OffsiteFailed(
        " ".join(message.split()),
        (hint + " " if hint else "") + f"The local backup stays; {retry}.",
        results,
    )


# --- what a target holds -------------------------------------------------------------------


@dataclass(frozen=True)
class TargetListing:
    """`list --target`: what a target holds, judged."""

    target: str
    location: str
    encryption: Encryption
    listing: Listing
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "location": self.location,
            "encryption": self.encryption,
            "backups": [_remote_json(b) for b in self.listing.backups],
            "foreign": [o.name for o in self.listing.foreign],
            "others": [_remote_json(b) for b in self.listing.others],
        }


def _remote_json(b: RemoteBackup) -> dict[str, Any]:
    m = b.manifest
    created = b.created_at or naming.parse_backup_name(b.backup)
    return {
        "name": b.backup,
        "complete": b.complete,
        "created": created.isoformat() if created else None,
        "uploaded": m.uploaded_at.isoformat() if m else None,
        "size": b.stored_size,
        "plain_size": m.plain_size if m else None,
        "format": m.format if m else None,
        "encryption": m.encryption if m else None,
        "objects": [o.name for o in b.objects],
        "problems": list(b.problems),
    }


# --- a sealed copy checked where it lies ---------------------------------------------------


@dataclass(frozen=True)
class SealedCheck:
    """`verify --target` without an identity: the copy's objects read back from the target
    and compared with what was uploaded (size and sha256), nothing decrypted."""

    target: str
    location: str
    backup: str
    checks: tuple[Check, ...]
    manifest: RemoteManifest | None
    seconds: float

    @property
    def ok(self) -> bool:
        return worst(self.checks) != FAIL


# --- a copy pulled back --------------------------------------------------------------------


@dataclass(frozen=True)
class Pulled:
    """A copy brought back: an ordinary local backup and its manifest."""

    target: str
    location: str
    path: Path
    manifest_path: Path
    manifest: Manifest
    remote: RemoteManifest
    seconds: float

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "target": self.target,
            "location": self.location,
            "backup": self.path.name,
            "path": str(self.path),
            "manifest": str(self.manifest_path),
            "sha256": m.sha256,
            "size": m.size,
            "format": m.format,
            "stack": m.stack,
            "created": m.started_at.isoformat(),
            "encryption": self.remote.encryption,
            "sealed_sha256": self.remote.data.sha256,
            "seconds": round(self.seconds, 2),
        }
