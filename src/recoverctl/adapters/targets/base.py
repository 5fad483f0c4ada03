"""The one interface every storage target implements, and what they share.

A target is a flat namespace of named objects (a folder, a bucket prefix, a folder on an
SFTP server). Like restic's backends and litestream's replica clients, it knows nothing of
backups: it stores bytes under names, and an object appears under its name only when whole.
What makes a backup complete on a target is decided above it (`core/offsite.py`).

Every failure leaves a target as a `RecoverctlError` whose message names the target and the
cause and whose hint says what to do; a failure raised by the *source* of a `put` (the
sealing, a Ctrl-C) passes through unchanged, after the partial upload is cleaned up.
"""

from __future__ import annotations

import hashlib
import io
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from datetime import timedelta
from types import TracebackType
from typing import BinaryIO, ClassVar, Self

from recoverctl.core.offsite import PARTIAL_SUFFIX, ObjectInfo
from recoverctl.errors import ErrorCode, RecoverctlError

__all__ = [
    "CHUNK",
    "PARTIAL_SUFFIX",
    "Measured",
    "ObjectInfo",
    "Source",
    "Target",
    "check_name",
    "check_namespace",
    "chunks_of",
]

CHUNK = 1 << 20
# A file-like object opened for reading in binary, or any iterable of byte chunks.
Source = BinaryIO | io.RawIOBase | io.BufferedIOBase | Iterable[bytes]
# One path segment, printable, no leading dot: object names never climb out of the target.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=@,-]{0,254}")


_NAMESPACE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class InvalidName(RecoverctlError, ValueError):
    """A name that is not an object's (a person's typo, or a foreign file's)."""

    default_code = ErrorCode.USAGE


def check_namespace(namespace: str) -> list[str]:
    """A namespace's folders ("vault/prod" -> ["vault", "prod"]); refuses anything that
    could climb out of the target's path."""
    parts = [p for p in namespace.split("/") if p]
    for part in parts:
        if not _NAMESPACE_RE.fullmatch(part):
            raise ValueError(f"invalid namespace {namespace!r}")
    return parts


def check_name(name: str, *, for_write: bool = False) -> str:
    """Refuses a name that could leave the target's folder or pose as a partial upload."""
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidName(
            f"Invalid object name {name!a}: one segment of letters, digits and _.+=@,-.",
            "`recoverctl list --target NAME` shows the objects' names.",
        )
    if for_write and name.endswith(PARTIAL_SUFFIX):
        raise InvalidName(f"{name!r}: the {PARTIAL_SUFFIX} suffix is reserved for uploads")
    return name


def chunks_of(source: Source, size: int = CHUNK) -> Iterator[bytes]:
    """The source's bytes in chunks, whether it is a readable file or an iterable of bytes."""
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            chunk = read(size)
            if not chunk:
                return
            yield bytes(chunk) if not isinstance(chunk, bytes) else chunk
    else:
        for chunk in source:
            if chunk:
                yield bytes(chunk)


class Measured:
    """Passes chunks through while counting and hashing them: the sha256 and size of what
    was uploaded (or downloaded) without a second read."""

    def __init__(self, source: Source):
        self._source = chunks_of(source)
        self._hash = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._source:
            self._hash.update(chunk)
            self.size += len(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class Target(ABC):
    """A place off this server that holds objects.

    `put` streams a source under a name and returns what was stored; the object is visible
    under that name only once whole. `get` returns an iterator of chunks (opening the object
    first, so a missing one fails at the call, not at the first chunk). `list` includes
    leftover `NAME.partial` uploads of a crashed run (folder and SFTP targets), so that they
    can be judged incomplete and removed; S3 never shows an unfinished upload. `delete` of a
    missing object is not an error. Instances connect lazily and are context managers.
    """

    kind: ClassVar[str]

    def __init__(self, name: str):
        self.name = name  # the [targets.NAME] it was configured as

    @property
    @abstractmethod
    def location(self) -> str:
        """Where it points, for messages: never a secret."""

    @property
    def label(self) -> str:
        return f"target {self.name} ({self.location})"

    @abstractmethod
    def check(self) -> None:
        """Reachable, credentials accepted, the folder or bucket there: raises otherwise."""

    @abstractmethod
    def put(self, name: str, source: Source) -> ObjectInfo: ...

    @abstractmethod
    def get(self, name: str) -> Iterator[bytes]: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]: ...

    @abstractmethod
    def delete(self, name: str) -> None: ...

    @abstractmethod
    def stat(self, name: str) -> ObjectInfo | None: ...

    def discard_unfinished(self, older_than: timedelta = timedelta(0)) -> int:
        """Removes what crashed uploads left that `list` cannot show, started more than
        older_than ago (a younger one may be another run's, still on its way); returns how
        many.

        Only S3 has such things (multipart uploads never completed nor aborted, because
        the connection was gone): a folder's or an SFTP server's leftovers are `.partial`
        objects, which `list` shows and `delete` removes."""
        return 0

    def close(self) -> None:  # noqa: B027 (a target with nothing to close needs no override)
        """Releases connections; the target may be used again afterwards (it reconnects)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"

    # Errors: one shape for every target.

    def error(
        self, code: ErrorCode, cause: str, hint: str, *, name: str | None = None
    ) -> RecoverctlError:
        what = f"{self.label}: {name}: " if name else f"{self.label}: "
        return RecoverctlError(what + cause, hint, code=code)

    def not_found(self, name: str) -> RecoverctlError:
        return self.error(
            ErrorCode.OBJECT_NOT_FOUND,
            "no such object.",
            f"List what it holds: recoverctl list --target {self.name}.",
            name=name,
        )
