"""A folder target: a NAS mount, a USB disk, any path this machine can write.

The same rules as the local backups: write NAME.partial (mode 0600), fsync it, rename it
into place, fsync the folder, so a crash or a full disk never leaves a whole-looking file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_mod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from recoverctl.adapters import fsio
from recoverctl.adapters.targets.base import (
    CHUNK,
    ObjectInfo,
    Source,
    Target,
    check_name,
    check_namespace,
    chunks_of,
)
from recoverctl.errors import ErrorCode, RecoverctlError


class DirTarget(Target):
    kind = "dir"

    def __init__(self, name: str, path: Path, *, namespace: str = ""):
        super().__init__(name)
        self.root = path
        self._parts = check_namespace(namespace)
        self.path = path.joinpath(*self._parts)

    @property
    def location(self) -> str:
        return str(self.path)

    def check(self) -> None:
        self._folder()

    def _folder(self, *, create: bool = False) -> Path:
        # The configured folder is never created here: a NAS that is not mounted shows as
        # a missing folder, and creating it would quietly fill the local disk we are
        # protecting instead. The namespace's folders inside it are made by a first upload.
        try:
            st = self.root.stat()
        except FileNotFoundError:
            raise self.error(
                ErrorCode.TARGET_NOT_FOUND,
                "the folder does not exist.",
                f"Mount it, or create it (mkdir -p -m 700 {self.root}) if this is its first use.",
            ) from None
        except OSError as exc:
            raise self._os_error(exc, "reading the folder") from None
        if not stat_mod.S_ISDIR(st.st_mode):
            raise self.error(
                ErrorCode.TARGET_NOT_FOUND,
                "it is not a folder.",
                "Point [targets] path at a folder.",
            )
        if create:
            current = self.root
            for part in self._parts:
                current = current / part
                try:
                    current.mkdir(mode=0o700)
                except FileExistsError:
                    continue
                except OSError as exc:
                    raise self._os_error(exc, f"creating the folder {current}") from None
        return self.path

    def put(self, name: str, source: Source) -> ObjectInfo:
        final = self._folder(create=True) / check_name(name, for_write=True)
        # A .partial left by a crashed run is ours: the project lock keeps two pushes apart.
        fsio.remove_quietly(final.with_name(final.name + ".partial"))
        try:
            partial, f = fsio.open_partial(final)
        except OSError as exc:
            raise self._os_error(exc, "creating the file", name) from None
        try:
            try:
                # Errors of the source (its iterator) pass through as they are: only the
                # writes below are the target's failures.
                for chunk in chunks_of(source):
                    try:
                        f.write(chunk)
                    except OSError as exc:
                        raise self._os_error(exc, "writing", name) from None
                try:
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
                except OSError as exc:
                    raise self._os_error(exc, "writing", name) from None
            finally:
                # Closing flushes what the buffer still holds: on a full disk that fails
                # again, and must not replace the error already on its way.
                with contextlib.suppress(OSError):
                    f.close()
            try:
                fsio.publish(partial, final)
                st = final.stat()
            except OSError as exc:
                raise self._os_error(exc, "renaming the finished file", name) from None
        except BaseException:
            fsio.remove_quietly(partial)
            raise
        return _info(name, st)

    def get(self, name: str) -> Iterator[bytes]:
        path = self._folder() / check_name(name)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise self.not_found(name) from None
        except OSError as exc:
            raise self._os_error(exc, "opening", name) from None
        return self._read(f, name)

    def _read(self, f: BinaryIO, name: str) -> Iterator[bytes]:
        try:
            while True:
                try:
                    chunk = f.read(CHUNK)
                except OSError as exc:
                    raise self._os_error(exc, "reading", name) from None
                if not chunk:
                    return
                yield chunk
        finally:
            f.close()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        folder = self._folder()
        found: list[ObjectInfo] = []
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                        found.append(_info(entry.name, entry.stat(follow_symlinks=False)))
        except FileNotFoundError:
            return []  # nothing pushed to this namespace yet
        except OSError as exc:
            raise self._os_error(exc, "listing the folder") from None
        return sorted(found, key=lambda o: o.name)

    def delete(self, name: str) -> None:
        path = self._folder() / check_name(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._os_error(exc, "removing", name) from None
        try:
            fsio.fsync_dir(path.parent)
        except OSError as exc:
            raise self._os_error(exc, "removing", name) from None

    def stat(self, name: str) -> ObjectInfo | None:
        path = self._folder() / check_name(name)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._os_error(exc, "reading", name) from None
        return _info(name, st) if stat_mod.S_ISREG(st.st_mode) else None

    def _os_error(self, exc: OSError, doing: str, name: str | None = None) -> RecoverctlError:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return self.error(
                ErrorCode.DISK_FULL,
                f"no space left while {doing}; nothing partial was left.",
                "Free space on that disk (remove old copies) or point the target elsewhere.",
                name=name,
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return self.error(
                ErrorCode.TARGET_REFUSED,
                f"{reason} while {doing}.",
                "Give this user write access to the folder (and check it is not mounted read-only).",
                name=name,
            )
        if exc.errno in (errno.EIO, errno.ENXIO, errno.ENODEV, errno.ESTALE, errno.EHOSTDOWN):
            return self.error(
                ErrorCode.TARGET_UNREACHABLE,
                f"{reason} while {doing}.",
                "Check the disk or the network mount, then try again.",
                name=name,
            )
        return self.error(
            ErrorCode.TARGET_FAILED,
            f"{reason} while {doing}.",
            "Check the folder, then try again.",
            name=name,
        )


def _info(name: str, st: os.stat_result) -> ObjectInfo:
    return ObjectInfo(name=name, size=st.st_size, mtime=datetime.fromtimestamp(st.st_mtime, UTC))
