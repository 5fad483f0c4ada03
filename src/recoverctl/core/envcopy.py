"""The env files off-site: what a copy of them is called on a target, and its manifest.

A project's env files (`.env`, `.env.production`, whichever exist) and, optionally, the
browser key export (`key_file`) are sealed with age and kept in the project's own
namespace on each target, `PROJECT/env/` (beside the backups' `PROJECT/STACK/`, see
core/offsite.py), never taken for a backup:

| object | what |
| --- | --- |
| `STAMP.env.age` | `.env`, sealed |
| `STAMP.env.production.age` | `.env.production`, sealed |
| `STAMP.env.pitr.age`, `STAMP.env.production.pitr.age` | a stack's pgBackRest passphrase (core/pitr.py), sealed |
| `STAMP.keyfile.age` | the browser key export (already passphrase-wrapped), sealed |
| `manifest.json` | the manifest, in clear, written LAST |

A push writes new data objects (STAMP: when it started, to the microsecond) and then
replaces the manifest, which is the commit marker: until it is replaced, the previous copy
stays whole; the old objects are removed after. The manifest names the objects and the
sizes and sha256 of their sealed bytes; the values themselves travel only sealed.

Pure: nothing here touches a target or a file.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recoverctl.core.outside import AwareDatetime, read_json
from recoverctl.errors import ErrorCode, RecoverctlError

ENV_MANIFEST_VERSION = 1
STACK_ENV_NAMES = (".env", ".env.production")
# The repositories' cipher passphrases travel with the env files: without its passphrase a
# pgBackRest repository is unreadable.
PITR_ENV_NAMES = (".env.pitr", ".env.production.pitr")
ENV_NAMES = (*STACK_ENV_NAMES, *PITR_ENV_NAMES)  # the only names a copy ever writes back
KEY_FILE_SLOT = "keyfile"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

Role = Literal["env", "key_file"]


MANIFEST_NAME = "manifest.json"
_OBJECT_RE = re.compile(
    r"[0-9]{8}T[0-9]{12}Z\.(env|env\.production|env\.pitr|env\.production\.pitr|keyfile)\.age"
)


def namespace(project: str) -> str:
    """The folder (or key prefix) of a project's env copy on every target."""
    return f"{project}/env"


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def slot(name: str, role: Role) -> str:
    """`.env` -> `env`, `.env.production` -> `env.production`; the key export's own name
    is not part of its object's name."""
    return KEY_FILE_SLOT if role == "key_file" else name.lstrip(".")


def object_name(when: str, name: str, role: Role) -> str:
    return f"{when}.{slot(name, role)}.age"


def is_object_name(name: str) -> bool:
    return _OBJECT_RE.fullmatch(name) is not None


class EnvObject(BaseModel):
    """One sealed file on the target."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)  # the file's own name (.env, or the key export's)
    role: Role
    object: str = Field(min_length=1)
    size: int = Field(ge=0)  # of the sealed bytes
    sha256: str = Field(pattern=SHA256_PATTERN)  # of the sealed bytes


class EnvManifest(BaseModel):
    """What a target stores in clear beside the sealed env files: names, sizes, hashes of
    sealed bytes and the recipients' public keys; never a value."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    env_manifest_version: int = ENV_MANIFEST_VERSION
    project: str = Field(min_length=1)
    pushed_at: AwareDatetime
    recipients: tuple[str, ...]
    files: tuple[EnvObject, ...]
    recoverctl_version: str

    def to_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str = "the target") -> EnvManifest:
        try:
            data = read_json(raw)
        except ValueError:
            data = None
        version = data.get("env_manifest_version") if isinstance(data, dict) else None
        if isinstance(version, int) and version > ENV_MANIFEST_VERSION:
            raise RecoverctlError(
                f"The env files' manifest on {where} was written by a newer recoverctl "
                f"(format {version}; this one reads {ENV_MANIFEST_VERSION}).",
                "Upgrade recoverctl on this machine.",
                code=ErrorCode.MANIFEST_DAMAGED,
            )
        try:
            manifest = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first.get("loc", ())) or "the document"
            raise RecoverctlError(
                f"The env files' manifest on {where} is damaged: {loc}: {first.get('msg')}.",
                "Push the env files again from a machine that has them: recoverctl env push",
                code=ErrorCode.MANIFEST_DAMAGED,
            ) from None
        manifest.check()
        return manifest

    def check(self) -> None:
        """Refuses a manifest that would write anything but the known env files, or read
        objects that are not this project's."""
        for f in self.files:
            ok_name = f.name in ENV_NAMES if f.role == "env" else _plain_name(f.name)
            if not ok_name or not is_object_name(f.object):
                raise RecoverctlError(
                    "The env files' manifest names a file recoverctl never writes "
                    f"({f.name!r} as {f.object!r}): refused.",
                    "Push the env files again from a machine that has them: "
                    "recoverctl env push",
                    code=ErrorCode.MANIFEST_DAMAGED,
                )

    def key_file(self) -> EnvObject | None:
        return next((f for f in self.files if f.role == "key_file"), None)


def _plain_name(name: str) -> bool:
    return bool(name) and "/" not in name and name not in (".", "..") and "\x00" not in name


def unchanged(current: dict[str, str], recorded: dict[str, str] | None) -> bool:
    """The files (name -> sha256 of their plaintext) are those last pushed to a target."""
    return recorded is not None and current == recorded
