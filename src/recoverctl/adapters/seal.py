"""age encryption for the off-site copies, through pyrage, streamed.

Sealed files are plain age files (X25519 recipients): `age -d -i KEY FILE` opens them
without recoverctl. Memory stays flat in the file's size: pyrage reads and writes through
the small adapters below, 64 KiB at a time.

Two things pyrage does that the adapters undo:
- it turns any exception raised by our reader or writer (a Ctrl-C, a full disk, the
  source's own error) into its own EncryptError/DecryptError carrying only text; the
  adapters keep the original and it is raised again as it was;
- age authenticates chunk by chunk and notices a truncated file only at its end, after
  it wrote the plaintext before it: `unseal` writes NAME.partial and renames it only when
  the whole input decrypted and matched what the caller expected.

The private key (identity) is needed only to unseal. It is refused when group or others
can read it or when it sits inside the project, and it is never printed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import queue
import stat as stat_mod
import threading
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pyrage
from pyrage import x25519

from recoverctl.adapters import fsio
from recoverctl.adapters.targets.base import Source, chunks_of
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.settings import EncryptionSettings, check_recipient

STREAM_CHUNK = 256 << 10


class Sink(Protocol):
    """Anything sealed or unsealed bytes can be written to (a binary file, a BytesIO)."""

    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class Recipient:
    """An age public key (age1...)."""

    text: str
    key: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Identity:
    """An age private key; its repr shows only its public half."""

    recipient: str
    key: Any = field(repr=False, compare=False)


@dataclass(frozen=True)
class Sealed:
    """What a seal produced: the sealed bytes' sha256 and size (what the target stores and
    the remote manifest records) and the plaintext's."""

    sha256: str
    size: int
    plain_sha256: str
    plain_size: int


# Keys.


def parse_recipient(text: str, *, where: str = "the settings") -> Recipient:
    try:
        value = check_recipient(text)
        return Recipient(value, x25519.Recipient.from_str(value))
    except (ValueError, pyrage.RecipientError) as exc:
        raise RecoverctlError(
            f"A recipient in {where} is not usable: {exc}.",
            "Recipients are age public keys (age1...), as age-keygen -y prints them.",
            code=ErrorCode.CONFIG_INVALID,
        ) from None


def load_recipients(encryption: EncryptionSettings) -> list[Recipient]:
    """The recipients [encryption] names, from the list or the recipients file."""
    if encryption.recipients_file is not None:
        path = encryption.recipients_file
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise RecoverctlError(
                f"Recipients file {path} is unreadable: {getattr(exc, 'strerror', None) or exc}.",
                "Fix recipients_file in [encryption], or list the keys in recipients = [...].",
                code=ErrorCode.CONFIG_INVALID,
            ) from None
        texts = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        where = f"recipients file {path}"
    else:
        texts = list(encryption.recipients)
        where = "[encryption] recipients"
    if not texts:
        raise RecoverctlError(
            f"No recipients in {where}: nothing could open the off-site copies.",
            "Create an identity (recoverctl keys new-identity FILE) and put the age1... "
            "key it prints in [encryption] recipients.",
            code=ErrorCode.ENCRYPTION_REQUIRED,
        )
    return [parse_recipient(t, where=where) for t in texts]


def _secure_location(path: Path, project_dir: Path | None, what: str) -> None:
    if project_dir is None:
        return
    if path.resolve().is_relative_to(project_dir.resolve()):
        raise RecoverctlError(
            f"The {what} {path} is inside the project folder {project_dir}: refused "
            "(a checkout gets copied, shared and committed).",
            "Keep it outside the project, where the browser key export is kept.",
            code=ErrorCode.IDENTITY_INVALID,
        )


def load_identity(path: Path, *, project_dir: Path | None = None) -> list[Identity]:
    """The age identities in an identity file (as age-keygen writes it), after checking
    where it is and who can read it."""
    path = path.expanduser()
    _secure_location(path, project_dir, "identity file")
    try:
        st = path.stat()
        if not stat_mod.S_ISREG(st.st_mode):
            raise IsADirectoryError(path)
        if st.st_mode & 0o077:
            raise RecoverctlError(
                f"The identity file {path} can be read by group or others "
                f"(mode {stat_mod.S_IMODE(st.st_mode):04o}): refused.",
                f"chmod 600 {path}",
                code=ErrorCode.IDENTITY_INVALID,
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecoverctlError(
            f"The identity file {path} does not exist.",
            "Pass the age identity the backups were encrypted to (--identity FILE).",
            code=ErrorCode.IDENTITY_INVALID,
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecoverctlError(
            f"The identity file {path} is unreadable ({type(exc).__name__}).",
            "Pass an age identity file, as age-keygen writes it.",
            code=ErrorCode.IDENTITY_INVALID,
        ) from None
    identities: list[Identity] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            key = x25519.Identity.from_str(line)
        except (pyrage.IdentityError, ValueError):
            # The line itself is never shown: it may be a secret with a typo.
            raise RecoverctlError(
                f"Line {number} of the identity file {path} is not an age identity.",
                "Pass an age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes it).",
                code=ErrorCode.IDENTITY_INVALID,
            ) from None
        identities.append(Identity(str(key.to_public()), key))
    if not identities:
        raise RecoverctlError(
            f"The identity file {path} holds no age identity.",
            "Pass an age identity file (AGE-SECRET-KEY-1... lines, as age-keygen writes it).",
            code=ErrorCode.IDENTITY_INVALID,
        )
    return identities


def new_identity(path: Path, *, project_dir: Path | None = None) -> str:
    """Creates an age identity file (mode 0600, never over an existing file, never inside
    the project) and returns its recipient (the public key to put in [encryption])."""
    path = path.expanduser().absolute()
    _secure_location(path, project_dir, "identity file")
    if path.exists() or path.is_symlink():
        raise RecoverctlError(
            f"{path} already exists: an identity file is never overwritten.",
            "Choose another path (losing the old key loses every copy sealed to it).",
            code=ErrorCode.FILE_EXISTS,
        )
    key = x25519.Identity.generate()
    recipient = str(key.to_public())
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    content = f"# created: {stamp}\n# public key: {recipient}\n{key}\n".encode()
    try:
        path.parent.mkdir(mode=fsio.PRIVATE_DIR, parents=True, exist_ok=True)
        partial, f = fsio.open_partial(path)
        try:
            with f:
                os.fchmod(f.fileno(), fsio.PRIVATE_FILE)  # whatever the umask
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
            # link() fails if the name exists: no window in which another file is replaced.
            os.link(partial, path)
            fsio.fsync_dir(path.parent)
        finally:
            fsio.remove_quietly(partial)
    except FileExistsError:
        raise RecoverctlError(
            f"{path} already exists: an identity file is never overwritten.",
            "Choose another path.",
            code=ErrorCode.FILE_EXISTS,
        ) from None
    except OSError as exc:
        raise RecoverctlError(
            f"Cannot write the identity file {path}: {exc.strerror or exc}.",
            "Choose a folder you can write to.",
            code=ErrorCode.WRITE_FAILED,
        ) from None
    return recipient


# Streams between pyrage and Python.


class _Reader(io.RawIOBase):
    """A readable over an iterator of chunks; hashes what pyrage reads and keeps the first
    exception the iterator raised."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._view = memoryview(b"")
        self._hash = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            while not self._view:
                chunk = next(self._chunks, None)
                if chunk is None:
                    return 0
                self._hash.update(chunk)
                self.size += len(chunk)
                self._view = memoryview(chunk)
            n = min(len(buffer), len(self._view))
            buffer[:n] = self._view[:n]
            self._view = self._view[n:]
            return n
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def drain(self) -> int:
        """Reads what pyrage left unread (it stops at age's final chunk); returns its size."""
        left = len(self._view)
        self._view = memoryview(b"")
        for chunk in self._chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            left += len(chunk)
        return left

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


class _Writer:
    """Where pyrage writes: hashes, forwards, and keeps the first exception raised."""

    def __init__(self, sink: Sink):
        self._sink = sink
        self._hash = hashlib.sha256()
        self.size = 0
        self.error: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            chunk = bytes(data)  # pyrage may hand a view of a buffer it reuses
            self._sink.write(chunk)
            self._hash.update(chunk)
            self.size += len(chunk)
            return len(chunk)
        except BaseException as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        flush = getattr(self._sink, "flush", None)
        if callable(flush):
            flush()

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def _on_write_side(exc: OSError, reader: _Reader) -> bool:
    """Whether an OSError came from writing our file (or its fsync and rename) rather than
    from the source being read: only the first can be a full disk here."""
    return exc is not reader.error


def _reraise_ours(reader: _Reader, writer: _Writer) -> None:
    for exc in (reader.error, writer.error):
        if exc is not None:
            raise exc


# Sealing.


def seal(src: Source, dst: Sink, recipients: Sequence[Recipient]) -> Sealed:
    """Encrypts src to every recipient into dst (a writable binary file), streamed.

    Errors of src and dst reach the caller as they were raised (a disk full is an OSError,
    Ctrl-C a KeyboardInterrupt)."""
    if not recipients:
        raise RecoverctlError(
            "No recipients: refusing to seal to nobody.",
            "Set [encryption] recipients.",
            code=ErrorCode.ENCRYPTION_REQUIRED,
        )
    reader = _Reader(chunks_of(src))
    writer = _Writer(dst)
    try:
        pyrage.encrypt_io(reader, writer, [r.key for r in recipients])
    except BaseException:
        _reraise_ours(reader, writer)
        raise
    return Sealed(writer.sha256, writer.size, reader.sha256, reader.size)


def seal_bytes(data: bytes, recipients: Sequence[Recipient]) -> bytes:
    """A small document (the local manifest) sealed in memory."""
    out = io.BytesIO()
    seal(io.BytesIO(data), out, recipients)
    return out.getvalue()


class _Cancelled(Exception):
    pass


class _ChunkQueue:
    """pyrage's 64 KiB writes gathered into larger chunks on a bounded queue."""

    def __init__(self, depth: int, cancel: threading.Event):
        self.queue: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._cancel = cancel
        self._buf: list[bytes] = []
        self._held = 0

    def write(self, chunk: bytes) -> None:
        self._buf.append(chunk)
        self._held += len(chunk)
        if self._held >= STREAM_CHUNK:
            self._send(b"".join(self._buf))
            self._buf.clear()
            self._held = 0

    def finish(self) -> None:
        if self._buf:
            self._send(b"".join(self._buf))
            self._buf.clear()
        self._send(None)

    def fail(self, exc: BaseException) -> None:
        with contextlib.suppress(_Cancelled):
            self._send(exc)

    def _send(self, item: bytes | BaseException | None) -> None:
        while True:
            if self._cancel.is_set():
                raise _Cancelled
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


class SealStream:
    """Sealed bytes as an iterator of chunks, for `Target.put`, without a sealed file on
    disk: a thread runs the encryption into a bounded queue (depth x 256 KiB at most: the
    target buffers its own parts, and every MiB here is one more of peak RSS).

    `result` is known once the iterator is exhausted. An error of the source is raised
    here, in the consumer, as it was raised. Use it as a context manager: when the upload
    fails, the exception's traceback keeps the iterator alive, and only `close()` (run by
    the `with`) stops the thread at once:

        with seal.sealed_chunks(src, recipients) as stream:
            target.put(name, stream)
        sealed = stream.result
    """

    def __init__(self, src: Source, recipients: Sequence[Recipient], *, depth: int = 4):
        self._src = src
        self._recipients = list(recipients)
        self._depth = depth
        self._result: Sealed | None = None
        self._chunks: Generator[bytes] | None = None

    def __enter__(self) -> SealStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._chunks is not None:
            self._chunks.close()

    @property
    def result(self) -> Sealed:
        if self._result is None:
            raise RuntimeError("the sealed stream was not read to its end")
        return self._result

    def __iter__(self) -> Iterator[bytes]:
        if self._chunks is not None:
            raise RuntimeError("a SealStream can be read once")
        self._chunks = self._run()
        return self._chunks

    def _run(self) -> Generator[bytes]:
        cancel = threading.Event()
        sink = _ChunkQueue(self._depth, cancel)
        outcome: list[Sealed] = []

        def produce() -> None:
            try:
                outcome.append(seal(self._src, sink, self._recipients))
                sink.finish()
            except _Cancelled:
                pass
            except BaseException as exc:
                sink.fail(exc)

        worker = threading.Thread(target=produce, name="recoverctl-seal", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    item = sink.queue.get(timeout=0.2)
                except queue.Empty:
                    if not worker.is_alive() and sink.queue.empty():
                        raise RuntimeError("the sealing thread ended without a result") from None
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
            worker.join()
            self._result = outcome[0]
        finally:
            cancel.set()
            worker.join(timeout=10)


def sealed_chunks(src: Source, recipients: Sequence[Recipient]) -> SealStream:
    return SealStream(src, recipients)


# Unsealing.


@dataclass(frozen=True)
class Unsealed:
    path: Path
    sha256: str  # of the sealed input
    size: int
    plain_sha256: str
    plain_size: int


def unseal(
    sealed: Source,
    dst: Path,
    identities: Sequence[Identity],
    *,
    expect_sha256: str | None = None,
    expect_size: int | None = None,
    expect_plain_sha256: str | None = None,
    expect_plain_size: int | None = None,
    where: str = "the sealed file",
) -> Unsealed:
    """Decrypts sealed (a file or an iterator of chunks, e.g. `Target.get`) into dst.

    The plaintext goes to dst.partial (mode 0600) and is renamed to dst only when the whole
    input decrypted and every expectation given holds (the sealed bytes' size and sha256
    from the remote manifest, the plaintext's from the local one). Otherwise the partial
    file is removed and nothing carries dst's name.
    """
    fsio.remove_quietly(dst.with_name(dst.name + ".partial"))
    try:
        partial, f = fsio.open_partial(dst)
    except OSError as exc:
        raise write_error(exc, dst) from None
    reader = _Reader(chunks_of(sealed))
    writer = _Writer(f)
    try:
        with f:
            try:
                pyrage.decrypt_io(reader, writer, [i.key for i in identities])
            except BaseException as exc:
                _reraise_ours(reader, writer)
                raise _decrypt_error(exc, where, reader.size) from None
            trailing = reader.drain()
            f.flush()
            os.fsync(f.fileno())
        problems: list[str] = []
        if trailing:
            problems.append(f"{trailing} bytes follow the end of the encrypted data")
        if expect_size is not None and reader.size != expect_size:
            problems.append(f"it has {reader.size} bytes, {expect_size} were uploaded")
        elif expect_sha256 is not None and reader.sha256 != expect_sha256:
            problems.append("its sha256 differs from the one recorded at upload")
        if expect_plain_size is not None and writer.size != expect_plain_size:
            problems.append(
                f"it decrypts to {writer.size} bytes, the backup had {expect_plain_size}"
            )
        elif expect_plain_sha256 is not None and writer.sha256 != expect_plain_sha256:
            problems.append("it decrypts to bytes whose sha256 differs from the backup's")
        if problems:
            raise RecoverctlError(
                f"{where} is damaged: {'; '.join(problems)}.",
                "Nothing was kept. Fetch it again; if it stays damaged, use another copy.",
                code=ErrorCode.OBJECT_CORRUPT,
            )
        fsio.publish(partial, dst)
    except BaseException as exc:
        fsio.remove_quietly(partial)
        if isinstance(exc, OSError) and _on_write_side(exc, reader):
            raise write_error(exc, dst) from None
        raise
    return Unsealed(dst, reader.sha256, reader.size, writer.sha256, writer.size)


def unseal_bytes(
    sealed: Source,
    identities: Sequence[Identity],
    *,
    where: str = "the sealed document",
    limit: int = 64 << 20,
) -> bytes:
    """A small sealed document (the local manifest) decrypted in memory; age checks the
    whole of it before this returns."""
    out = io.BytesIO()
    reader = _Reader(_limited(chunks_of(sealed), limit, where))
    writer = _Writer(out)
    try:
        pyrage.decrypt_io(reader, writer, [i.key for i in identities])
    except BaseException as exc:
        _reraise_ours(reader, writer)
        raise _decrypt_error(exc, where, reader.size) from None
    return out.getvalue()


def _limited(chunks: Iterator[bytes], limit: int, where: str) -> Iterator[bytes]:
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise RecoverctlError(
                f"{where} is larger than {limit} bytes: not one of ours.",
                "Push that backup again.",
                code=ErrorCode.OBJECT_CORRUPT,
            )
        yield chunk


def _decrypt_error(exc: BaseException, where: str, offset: int) -> BaseException:
    if not isinstance(exc, Exception):
        return exc
    text = str(exc)
    if isinstance(exc, pyrage.DecryptError) and "no matching keys" in text.lower():
        return RecoverctlError(
            f"{where} is encrypted to other recipients: the identity given cannot open it.",
            "Pass the identity whose public key is in [encryption] recipients when it was "
            "sealed (the remote manifest lists them).",
            code=ErrorCode.DECRYPT_FAILED,
        )
    if isinstance(exc, pyrage.DecryptError):
        return RecoverctlError(
            f"{where} is not a readable age file ({text or 'bad header'}).",
            "It is damaged, or not one of ours: use another copy.",
            code=ErrorCode.OBJECT_CORRUPT,
        )
    return RecoverctlError(
        f"{where} is damaged or truncated: decryption failed after {offset} bytes.",
        "Nothing was kept. Fetch it again; if it stays damaged, use another copy.",
        code=ErrorCode.OBJECT_CORRUPT,
    )


def write_error(
    exc: OSError,
    dst: Path,
    *,
    kept: str | None = None,
    full_hint: str = "Free space there, then try again.",
    hint: str = "Check the folder, then try again.",
) -> RecoverctlError:
    """A failed write of dst as the error a person reads: a full disk (DISK_FULL) apart from
    any other failure (WRITE_FAILED). A caller that writes for a command with somewhere else
    to write (a pull's --output-dir) says what was kept and where to go instead."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return RecoverctlError(
            f"No space left in {dst.parent} while writing {dst.name}; "
            f"{kept or 'nothing partial was left'}.",
            full_hint,
            code=ErrorCode.DISK_FULL,
        )
    said = f"; {kept}" if kept else ""
    return RecoverctlError(
        f"Cannot write {dst}: {exc.strerror or exc}{said}.", hint, code=ErrorCode.WRITE_FAILED
    )
