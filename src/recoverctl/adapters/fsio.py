"""Files that appear whole or not at all, private modes, and the one-operation-at-a-time lock."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from recoverctl.errors import ErrorCode, RecoverctlError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
READ_CHUNK = 1 << 20


def ensure_private_dir(path: Path) -> None:
    """Creates the folder private (0700, whatever the umask). A folder that exists keeps
    its mode: it may be /tmp or a share someone named; the files written in it are 0600."""
    try:
        path.mkdir(mode=PRIVATE_DIR, parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    path.chmod(PRIVATE_DIR)


def open_partial(final: Path) -> tuple[Path, BinaryIO]:
    """A new NAME.partial, mode 0600 from its first byte, never over an existing file."""
    partial = final.with_name(final.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    return partial, os.fdopen(fd, "wb")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(partial: Path, final: Path) -> None:
    """Renames a completed, fsynced partial into place and makes the rename durable."""
    os.replace(partial, final)
    fsync_dir(final.parent)


def write_atomic(final: Path, data: bytes) -> None:
    partial, f = open_partial(final)
    try:
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        publish(partial, final)
    except BaseException:
        remove_quietly(partial)
        raise


def create_private(path: Path, data: bytes) -> None:
    """A new file, mode 0600 from its first byte whatever the umask, seen whole or not at
    all, never over one that exists: FileExistsError when path exists (or appears
    meanwhile), any other OSError as raised, and then nothing carries path's name.

    The bytes go to a temporary file (mkstemp: 0600) linked into place: the link fails,
    rather than replaces, when the name is taken. On a file system without hard links the
    file is created in place with O_EXCL, and removed again if writing it fails."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            _create_exclusive(path, data)  # a file system without hard links
        fsync_dir(path.parent)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _create_exclusive(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        # Created just now, exclusively: ours. A truncated file (a full disk, Ctrl-C) would
        # be taken by the next run for one that "already exists".
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def sha256_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def head_and_tail(path: Path, head: int, tail: int) -> tuple[bytes, bytes]:
    with path.open("rb") as f:
        first = f.read(head)
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - tail))
        return first, f.read(tail)


def read_bounded(path: Path, limit: int) -> bytes:
    """A small file recoverctl reads whole (a manifest, a record): at most limit bytes, or
    ValueError, so that a huge or endless file is refused rather than read into memory."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name} is larger than {limit // (1024 * 1024)} MiB")
    return data


def read_chunks(
    path: Path, on_bytes: Callable[[int], None] | None = None, size: int = READ_CHUNK
) -> Iterator[bytes]:
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)


def lock_dir() -> Path:
    """The same folder for every run of this user: a login shell, a timer and cron (which
    sets no XDG_RUNTIME_DIR) must see each other's locks. RECOVERCTL_LOCK_DIR moves it
    (the tests keep theirs apart)."""
    given = os.environ.get("RECOVERCTL_LOCK_DIR")
    folder = Path(given) if given else Path(f"/tmp/recoverctl-{os.getuid()}")  # noqa: S108
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise RecoverctlError(
            f"Lock folder {folder} is not a private folder of yours.",
            f"Remove it (rm -rf {folder}) and run the command again.",
            code=ErrorCode.LOCKED,
        )
    return folder


@contextlib.contextmanager
def held_lock(name: str, operation: str, busy: Callable[[str], RecoverctlError]) -> Iterator[None]:
    """An exclusive lock on the file `name` in the lock folder, held for the block, or at
    once busy(holder) raised (holder: what the running process wrote, e.g. "backup (pid
    42)"). The lock goes with the process, however it ends."""
    path = lock_dir() / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise busy(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{operation} (pid {os.getpid()})".encode(), 0)
        yield
    finally:
        os.close(fd)


def project_lock(project: str, operation: str) -> contextlib.AbstractContextManager[None]:
    """One backup or restore per compose project at a time, across checkouts and users' shells."""

    def busy(holder: str) -> RecoverctlError:
        return RecoverctlError(
            f"Another operation is running on {project}: {holder}.",
            "Wait for it to finish, then try again.",
            code=ErrorCode.LOCKED,
        )

    return held_lock(f"{project}.lock", operation, busy)
