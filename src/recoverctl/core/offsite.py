"""Off-site copies: what each backup becomes on a target, and how to tell a whole one.

Each compose project and stack has a namespace of its own on a target, the folder (or key
prefix) `PROJECT/STACK/` under the target's path or prefix, e.g. `vault/prod/`: dev and
prod, or two machines, pushing to one target never see, judge or remove each other's
objects. Inside it, per local backup `B` (e.g. `backup_2026-11-29_203000.dump`), three
objects whose names begin with `B`, so a person browsing the bucket recognises them:

| object | encrypted target | `encryption = "none"` |
| --- | --- | --- |
| the backup itself | `B.age` | `B` |
| its local manifest (table names, row counts, migrations) | `B.json.age` | `B.json` |
| the remote manifest, in clear, written LAST | `B.age.manifest.json` | `B.manifest.json` |

The remote manifest is the commit marker: a backup without one is an upload that did not
finish, never listed as complete and never restored. It says only what listing and integrity
checks need (names, times, sizes, the sha256 of the bytes as stored, format, the recoverctl
version, the recipients, and the project and stack it belongs to); whatever could reveal the vault's contents stays in the sealed
local manifest.

Pure: nothing here touches a target. The caller lists a target, fetches the remote
manifests `remote_manifest_names` names, parses them with `RemoteManifest.from_bytes` and
hands both to `classify`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recoverctl.core.naming import Format, is_backup_name
from recoverctl.core.naming import sort_key as name_sort_key
from recoverctl.core.outside import AwareDatetime, read_json
from recoverctl.errors import ErrorCode, RecoverctlError

REMOTE_MANIFEST_VERSION = 1
SEALED_SUFFIX = ".age"
LOCAL_MANIFEST_SUFFIX = ".json"
REMOTE_MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".partial"

Encryption = Literal["age", "none"]
SHA256_PATTERN = r"^[0-9a-f]{64}$"
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
# Objects without a remote manifest younger than this may be another run's upload still on
# its way: a push removes only older ones (and S3 multipart uploads initiated before it).
CRASHED_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Owner:
    """Whose copies: the compose project and the stack that pushed them."""

    project: str
    stack: Literal["dev", "prod"]

    @property
    def namespace(self) -> str:
        """Their folder (or key prefix) inside the target's path or prefix."""
        return f"{self.project}/{self.stack}"

    def __str__(self) -> str:
        return f"{self.project} {self.stack}"


@dataclass(frozen=True)
class ObjectInfo:
    """One object as a target lists it. mtime is timezone-aware (UTC)."""

    name: str
    size: int
    mtime: datetime


@dataclass(frozen=True)
class ObjectNames:
    """The three object names of one backup on one target, in the order they are written."""

    data: str
    manifest: str
    remote_manifest: str

    def all(self) -> tuple[str, str, str]:
        return (self.data, self.manifest, self.remote_manifest)


def object_names(backup: str, encryption: Encryption = "age") -> ObjectNames:
    sealed = SEALED_SUFFIX if encryption == "age" else ""
    data = backup + sealed
    return ObjectNames(
        data=data,
        manifest=backup + LOCAL_MANIFEST_SUFFIX + sealed,
        remote_manifest=data + REMOTE_MANIFEST_SUFFIX,
    )


def backup_of(name: str) -> str:
    """The local backup name an object belongs to: its name without our suffixes.

    Order matters: `B.age.manifest.json` and `B.json.age` both lead back to `B`, and a
    backup's own name ends in `.dump` or `.sql`, never in one of these suffixes.
    """
    for suffix in (PARTIAL_SUFFIX, REMOTE_MANIFEST_SUFFIX, SEALED_SUFFIX, LOCAL_MANIFEST_SUFFIX):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


class StoredObject(BaseModel):
    """One object as uploaded: its size and the sha256 of its bytes as stored (sealed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=SHA256_PATTERN)


class RemoteManifest(BaseModel):
    """What a target stores in clear beside a backup. Nothing in it names a table or counts
    a row: those travel in the sealed local manifest (`manifest`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    remote_manifest_version: int = REMOTE_MANIFEST_VERSION
    backup: str = Field(min_length=1)
    format: Format
    created_at: AwareDatetime  # when the backup was taken (its local manifest's started_at)
    uploaded_at: AwareDatetime
    plain_size: int = Field(ge=0)  # the local backup's size, before sealing
    encryption: Encryption
    # Public keys only: which identity opens the backup, the first question on a bad day.
    recipients: tuple[str, ...] = ()
    data: StoredObject
    manifest: StoredObject
    recoverctl_version: str
    # Whose backup: in clear, they say nothing of the vault's contents. A copy of another
    # project or stack is never listed, restored or removed as ours.
    project: str = Field(min_length=1)
    stack: Literal["dev", "prod"]

    @property
    def owner(self) -> Owner:
        return Owner(self.project, self.stack)

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "the target") -> RemoteManifest:
        """Parses a downloaded remote manifest; anything unreadable is MANIFEST_DAMAGED."""
        try:
            data = read_json(raw)
        except ValueError:
            data = None
        version = data.get("remote_manifest_version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > REMOTE_MANIFEST_VERSION:
            raise RecoverctlError(
                f"A remote manifest on {where} was written by a newer recoverctl "
                f"(format {version}; this one reads {REMOTE_MANIFEST_VERSION}).",
                "Upgrade recoverctl on this machine.",
                code=ErrorCode.MANIFEST_DAMAGED,
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "the document"
            raise RecoverctlError(
                f"A remote manifest on {where} is damaged: {loc}: {first.get('msg')}.",
                "Push that backup again; until then it is not counted as a copy.",
                code=ErrorCode.MANIFEST_DAMAGED,
            ) from None

    def expected_names(self) -> ObjectNames:
        return object_names(self.backup, self.encryption)


def remote_manifest_names(listing: Iterable[ObjectInfo]) -> list[str]:
    """The objects the caller must fetch before `classify` can judge the listing."""
    # Only a backup's: a foreign file named like a manifest ("x (copy).manifest.json") is
    # left alone, never fetched.
    return sorted(
        o.name
        for o in listing
        if o.name.endswith(REMOTE_MANIFEST_SUFFIX) and is_backup_name(backup_of(o.name))
    )


@dataclass(frozen=True)
class RemoteBackup:
    """One backup as found on a target.

    complete: the remote manifest was read and both objects it names are there with the
    sizes it records. objects: every object of this backup on the target (an incomplete
    backup's are what the next push removes). leftovers: objects of a complete backup that
    its manifest does not name (an interrupted re-upload's `.partial`), safe to remove.
    """

    backup: str
    complete: bool
    manifest: RemoteManifest | None
    objects: tuple[ObjectInfo, ...]
    problems: tuple[str, ...] = ()
    leftovers: tuple[ObjectInfo, ...] = ()

    @property
    def created_at(self) -> datetime | None:
        return self.manifest.created_at if self.manifest is not None else None

    @property
    def stored_size(self) -> int:
        return sum(o.size for o in self.objects)


@dataclass(frozen=True)
class Listing:
    """A target's content, judged: backups newest first by name, and the objects that are
    not ours (never touched, never deleted): `foreign` objects, whose names are not a
    backup's, and `others`, backups whose remote manifest names another project or stack."""

    backups: tuple[RemoteBackup, ...]
    foreign: tuple[ObjectInfo, ...] = ()
    others: tuple[RemoteBackup, ...] = ()

    @property
    def complete(self) -> tuple[RemoteBackup, ...]:
        return tuple(b for b in self.backups if b.complete)

    @property
    def incomplete(self) -> tuple[RemoteBackup, ...]:
        return tuple(b for b in self.backups if not b.complete)

    def find(self, backup: str) -> RemoteBackup | None:
        return next((b for b in self.backups if b.backup == backup), None)


def classify(
    listing: Iterable[ObjectInfo],
    manifests: Mapping[str, RemoteManifest | None],
    *,
    owner: Owner | None = None,
    is_backup: Callable[[str], bool] = is_backup_name,
    sort_key: Callable[[str], Any] = name_sort_key,
) -> Listing:
    """Says which backups on a target are complete and which are not.

    manifests maps each remote manifest's object name to what it parsed to; None (or a
    missing entry) means it could not be read, which makes that backup incomplete. With
    owner, a backup whose remote manifest names another project or stack goes to `others`:
    never a copy of ours, never removed.
    Objects whose name does not lead back to a backup name (is_backup) are foreign: a
    target folder may hold other files, and the next push must never remove them.
    """
    groups: dict[str, list[ObjectInfo]] = {}
    foreign: list[ObjectInfo] = []
    for obj in listing:
        base = backup_of(obj.name)
        if is_backup(base):
            groups.setdefault(base, []).append(obj)
        else:
            foreign.append(obj)

    judged = [_judge(base, objs, manifests) for base, objs in groups.items()]
    judged.sort(key=lambda b: (sort_key(b.backup), b.backup), reverse=True)
    backups = [b for b in judged if not _theirs(b, owner)]
    others = [_as_theirs(b) for b in judged if _theirs(b, owner)]
    return Listing(
        backups=tuple(backups),
        foreign=tuple(sorted(foreign, key=lambda o: o.name)),
        others=tuple(others),
    )


def _theirs(b: RemoteBackup, owner: Owner | None) -> bool:
    return owner is not None and b.manifest is not None and b.manifest.owner != owner


def _as_theirs(b: RemoteBackup) -> RemoteBackup:
    assert b.manifest is not None
    return RemoteBackup(b.backup, False, b.manifest, b.objects,
                        (f"a copy of {b.manifest.owner}'s backup, not ours",))  # fmt: skip


def _judge(
    base: str, objs: list[ObjectInfo], manifests: Mapping[str, RemoteManifest | None]
) -> RemoteBackup:
    by_name = {o.name: o for o in objs}
    ordered = tuple(sorted(objs, key=lambda o: o.name))
    marker = next(
        (
            n
            for n in (
                object_names(base, "age").remote_manifest,
                object_names(base, "none").remote_manifest,
            )
            if n in by_name
        ),
        None,
    )
    if marker is None:
        return RemoteBackup(
            base, False, None, ordered, ("no remote manifest: the upload did not finish",)
        )
    manifest = manifests.get(marker)
    if manifest is None:
        return RemoteBackup(base, False, None, ordered, (f"{marker} is unreadable",))

    problems: list[str] = []
    expected = manifest.expected_names()
    if manifest.backup != base or expected.remote_manifest != marker:
        problems.append(f"{marker} describes {manifest.backup}, not {base}")
    for role, ref, name in (
        ("data", manifest.data, expected.data),
        ("manifest", manifest.manifest, expected.manifest),
    ):
        if ref.name != name:
            problems.append(f"the {role} object is named {ref.name}, expected {name}")
            continue
        found = by_name.get(ref.name)
        if found is None:
            problems.append(f"{ref.name} is missing")
        elif found.size != ref.size:
            problems.append(f"{ref.name} has {found.size} bytes, the manifest says {ref.size}")
    if problems:
        return RemoteBackup(base, False, manifest, ordered, tuple(problems))
    named = set(expected.all())
    leftovers = tuple(o for o in ordered if o.name not in named)
    return RemoteBackup(base, True, manifest, ordered, (), leftovers)


def new_remote_manifest(
    *,
    backup: str,
    fmt: Format,
    created_at: datetime,
    plain_size: int,
    encryption: Encryption,
    recipients: Iterable[str],
    data: StoredObject,
    manifest: StoredObject,
    recoverctl_version: str,
    owner: Owner,
    uploaded_at: datetime | None = None,
) -> RemoteManifest:
    """The remote manifest for a backup whose two objects are uploaded; checks their names."""
    expected = object_names(backup, encryption)
    if (data.name, manifest.name) != (expected.data, expected.manifest):
        raise ValueError(f"objects {data.name}, {manifest.name} do not belong to {backup}")
    recips = tuple(recipients)
    if encryption == "age" and not recips:
        raise ValueError("an encrypted backup needs its recipients")
    return RemoteManifest(
        backup=backup,
        format=fmt,
        created_at=created_at,
        uploaded_at=uploaded_at or datetime.now(UTC),
        plain_size=plain_size,
        encryption=encryption,
        recipients=recips if encryption == "age" else (),
        data=data,
        manifest=manifest,
        recoverctl_version=recoverctl_version,
        project=owner.project,
        stack=owner.stack,
    )
