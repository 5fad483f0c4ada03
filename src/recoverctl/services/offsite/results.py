"""What the off-site service hands back: a push's copies (and the error that carries them
when one failed), a target's listing, a sealed copy's checks, a pulled backup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from recoverctl.core import naming
from recoverctl.core.checks import FAIL, Check, worst
from recoverctl.core.manifest import Manifest
from recoverctl.core.naming import Format
from recoverctl.core.offsite import Encryption, Listing, RemoteBackup, RemoteManifest, Sha256
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName
from recoverctl.errors import CopyError, ErrorCode, RecoverctlError

CopyStatus = Literal["pushed", "present", "failed"]


# --- what a push did -----------------------------------------------------------------------


# A copy's failure, in its JSON: code, message and hint (the envelope's error has details).
COPY_ERROR = meta(encode=RecoverctlError.brief, schema=CopyError | None)


@dataclass(frozen=True)
class Copy(JsonResult):
    """One backup on one target, after a push: pushed now, already there whole, or failed."""

    target: str
    location: str
    backup: str
    status: CopyStatus
    encryption: Encryption
    size: int = 0  # bytes stored on the target (its three objects)
    sha256: Sha256 | None = None  # of the data object as stored (sealed)
    seconds: float = field(default=0.0, metadata=meta(digits=2))
    removed: tuple[str, ...] = ()  # objects of incomplete copies removed on the way
    error: RecoverctlError | None = field(default=None, metadata=COPY_ERROR)


@dataclass(frozen=True)
class PushResult(JsonResult):
    """A local backup pushed to targets: one Copy per target, in the order pushed."""

    backup: Path
    copies: tuple[Copy, ...]

    @property
    @computed(after="backup")
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.copies)

    @property
    def failed(self) -> tuple[Copy, ...]:
        return tuple(c for c in self.copies if c.status == "failed")


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
class ListedBackup(JsonResult):
    """One backup on a target, as `list --target` shows it."""

    name: str
    complete: bool
    created: datetime | None  # its manifest's, else read from its name
    uploaded: datetime | None
    size: int  # bytes stored, every object of it counted
    plain_size: int | None
    format: Format | None
    encryption: Encryption | None
    objects: tuple[str, ...]
    problems: tuple[str, ...]

    @classmethod
    def of(cls, b: RemoteBackup) -> ListedBackup:
        m = b.manifest
        return cls(
            b.backup,
            b.complete,
            b.created_at or naming.parse_backup_name(b.backup),
            m.uploaded_at if m else None,
            b.stored_size,
            m.plain_size if m else None,
            m.format if m else None,
            m.encryption if m else None,
            tuple(o.name for o in b.objects),
            b.problems,
        )


@dataclass(frozen=True)
class TargetListing(JsonResult):
    """`list --target`: what a target holds, judged."""

    target: str
    location: str
    encryption: Encryption
    listing: Listing = field(metadata=INTERNAL)
    now: datetime = field(default_factory=lambda: datetime.now(UTC), metadata=INTERNAL)

    @property
    @computed(after="encryption")
    def backups(self) -> tuple[ListedBackup, ...]:
        return tuple(ListedBackup.of(b) for b in self.listing.backups)

    @property
    @computed(after="backups")
    def foreign(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.listing.foreign)

    @property
    @computed(after="foreign")
    def others(self) -> tuple[ListedBackup, ...]:
        """Backups of another project or stack."""
        return tuple(ListedBackup.of(b) for b in self.listing.others)


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
class Pulled(JsonResult):
    """A copy brought back: an ordinary local backup and its manifest."""

    target: str
    location: str
    path: Path
    manifest_path: Path = field(metadata=meta(name="manifest"))
    manifest: Manifest = field(metadata=INTERNAL)
    remote: RemoteManifest = field(metadata=INTERNAL)
    seconds: float = field(metadata=meta(digits=2))

    @property
    @computed(after="location")
    def backup(self) -> str:
        return self.path.name

    @property
    @computed(after="manifest")
    def sha256(self) -> Sha256:
        return self.manifest.sha256

    @property
    @computed(after="sha256")
    def size(self) -> int:
        return self.manifest.size

    @property
    @computed(after="size")
    def format(self) -> Format:
        return self.manifest.format

    @property
    @computed(after="format")
    def stack(self) -> StackName:
        return self.manifest.stack

    @property
    @computed(after="stack")
    def created(self) -> datetime:
        return self.manifest.started_at

    @property
    @computed(after="created")
    def encryption(self) -> Encryption:
        return self.remote.encryption

    @property
    @computed(after="encryption")
    def sealed_sha256(self) -> Sha256:
        return self.remote.data.sha256
