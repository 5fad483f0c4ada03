"""Manifests read from a target or beside a local backup, never trusted: bounded in size,
and a damaged one is told as such (None), not a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pydantic import ValidationError

from recoverctl.core.manifest import Manifest
from recoverctl.core.offsite import RemoteManifest
from recoverctl.errors import ErrorCode, RecoverctlError

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target

MANIFEST_LIMIT = 16 << 20  # a local manifest is a few KiB: anything near this is not ours


def read_remote_manifest(target: Target, name: str) -> RemoteManifest | None:
    """A remote manifest, or None when it cannot be read as one (a damaged object, or one
    written by a newer recoverctl): that backup is then incomplete, never a copy."""
    raw = b"".join(limited(target.get(name), MANIFEST_LIMIT))
    try:
        return RemoteManifest.from_bytes(raw, where=target.label)
    except RecoverctlError as exc:
        if exc.code is not ErrorCode.MANIFEST_DAMAGED:
            raise
        return None


def limited(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            return  # cut: parses as damaged, never read whole into memory
        yield chunk


def parse_manifest(raw: bytes) -> Manifest | None:
    """A local backup's manifest, or None when the bytes are not one."""
    try:
        return Manifest.model_validate_json(raw)
    except (ValidationError, ValueError):
        return None
