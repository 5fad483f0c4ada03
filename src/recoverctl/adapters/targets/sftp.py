"""An SFTP target (any OpenSSH server), through paramiko.

The server is trusted only through the known_hosts file the settings name: an unknown or a
changed host key is refused, never learned (a first connection that trusts whatever answers
is exactly what an attacker on the path needs). Authentication is by the key file alone:
no agent, no guessing among ~/.ssh keys, no password.

Writes go to NAME.partial (mode 0600), are flushed to the server's disk where it supports
fsync@openssh.com, then renamed with posix-rename@openssh.com, which replaces atomically.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import stat as stat_mod
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import paramiko
from paramiko.sftp import CMD_EXTENDED

from recoverctl import signals
from recoverctl.adapters.targets.base import (
    PARTIAL_SUFFIX,
    ObjectInfo,
    Source,
    Target,
    check_name,
    check_namespace,
    chunks_of,
)
from recoverctl.errors import ErrorCode, RecoverctlError

# paramiko logs transport failures with their tracebacks; without a handler of its own,
# Python's last-resort handler would print them on stderr next to our two-line error.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

READ_WINDOW = 8 << 20  # bytes requested ahead while downloading: bounds memory
READ_REQUEST = 256 << 10


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(f"host key for {hostname} not in known_hosts")
        self.hostname = hostname
        self.key = key


class _RefuseUnknown(paramiko.RejectPolicy):
    """RejectPolicy, with the offered key kept so the message can show its fingerprint."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> NoReturn:
        raise _UnknownHostKey(hostname, key)


class SftpTarget(Target):
    kind = "sftp"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        user: str,
        path: str,
        key_file: Path,
        known_hosts: Path,
        port: int = 22,
        timeout: float = 15.0,
        namespace: str = "",
    ):
        super().__init__(name)
        self.host = host
        self.port = port
        self.user = user
        root = path.rstrip("/") or "/"
        parts = check_namespace(namespace)
        self.base = posixpath.join(root, *parts) if parts else root
        self.key_file = key_file
        self.known_hosts = known_hosts
        self.timeout = timeout
        self._ssh: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._base_ready = False

    @property
    def location(self) -> str:
        # A relative path is under the user's home on the server: ~/ says so.
        path = self.base if self.base.startswith("/") else "/~/" + self.base
        return f"sftp://{self.user}@{self._hostport}{path}"

    @property
    def _hostport(self) -> str:
        return self.host if self.port == 22 else f"{self.host}:{self.port}"

    # Connection.

    def _client(self) -> paramiko.SFTPClient:
        if self._sftp is None:
            self._sftp = self._connect()
        return self._sftp

    def _connect(self) -> paramiko.SFTPClient:
        key = self._load_key()
        ssh = paramiko.SSHClient()
        try:
            # Loaded into the client's own table, not as its "host keys file": nothing is
            # ever written back to known_hosts.
            ssh.get_host_keys().load(str(self.known_hosts))
        except FileNotFoundError:
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"known_hosts file {self.known_hosts} does not exist, so no host key can be trusted.",
                f"Check the server's key fingerprint with its admin, then: ssh-keyscan -p {self.port} {self.host} >> {self.known_hosts}",
            ) from None
        except OSError as exc:
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"cannot read known_hosts file {self.known_hosts}: {exc.strerror or exc}.",
                "Fix its permissions or point known_hosts at a readable file.",
            ) from None
        ssh.set_missing_host_key_policy(_RefuseUnknown())
        try:
            ssh.connect(
                self.host,
                port=self.port,
                username=self.user,
                pkey=key,
                look_for_keys=False,
                allow_agent=False,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                channel_timeout=self.timeout,
            )
            transport = ssh.get_transport()
            if transport is not None:
                transport.set_keepalive(30)
            sftp = ssh.open_sftp()
            channel = sftp.get_channel()
            if channel is not None:
                channel.settimeout(max(self.timeout, 60.0))
        except BaseException as exc:
            ssh.close()
            if isinstance(exc, Exception):
                self._connect_error(exc)
            raise
        self._ssh = ssh
        return sftp

    def _load_key(self) -> paramiko.PKey:
        try:
            return paramiko.PKey.from_path(self.key_file)
        except FileNotFoundError:
            raise self.error(
                ErrorCode.CONFIG_INVALID,
                f"key file {self.key_file} does not exist.",
                f"Fix key_file in [targets.{self.name}], or create a key: ssh-keygen -t ed25519 -N '' -f {self.key_file}",
            ) from None
        except paramiko.PasswordRequiredException:
            raise self.error(
                ErrorCode.CONFIG_INVALID,
                f"key file {self.key_file} is protected by a passphrase, which an unattended backup cannot type.",
                "Use a key of its own for the backups, without a passphrase, allowed only for SFTP on the server.",
            ) from None
        except (paramiko.SSHException, OSError, ValueError, TypeError) as exc:
            raise self.error(
                ErrorCode.CONFIG_INVALID,
                f"key file {self.key_file} is not a private key this tool can read ({type(exc).__name__}).",
                "Point key_file at an OpenSSH private key (ed25519, ecdsa or rsa).",
            ) from None

    def _connect_error(self, exc: Exception) -> NoReturn:
        if isinstance(exc, _UnknownHostKey):
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"the server's host key ({_fingerprint(exc.key)}) is not in {self.known_hosts}: refused.",
                f"Check that fingerprint with the server's admin, then add it: ssh-keyscan -p {self.port} {self.host} >> {self.known_hosts}",
            ) from None
        if isinstance(exc, paramiko.BadHostKeyException):
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"the server's host key ({_fingerprint(exc.key)}) differs from the one in {self.known_hosts}: refused (someone may be in between).",
                f"If the server's key really changed, check the new fingerprint with its admin, then replace the old line (ssh-keygen -R '{_known_name(self.host, self.port)}' -f {self.known_hosts}).",
            ) from None
        if isinstance(exc, paramiko.AuthenticationException):
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"the server refused key {self.key_file} for user {self.user}.",
                f"Add its public key ({self.key_file}.pub) to ~{self.user}/.ssh/authorized_keys on the server, or fix user and key_file.",
            ) from None
        if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
            reason = _reason(exc)
            raise self.error(
                ErrorCode.TARGET_UNREACHABLE,
                f"cannot connect ({reason}).",
                "Check that the server is up and that host and port are right, then try again.",
            ) from None
        raise exc

    def close(self) -> None:
        sftp, ssh = self._sftp, self._ssh
        self._sftp = self._ssh = None
        self._base_ready = False
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if ssh is not None:
            with contextlib.suppress(Exception):
                ssh.close()

    def _path(self, name: str) -> str:
        return posixpath.join(self.base, name)

    def _ensure_base(self, sftp: paramiko.SFTPClient) -> None:
        if self._base_ready:
            return
        # mkdir -p, each missing level private to the backup user.
        parts = [p for p in self.base.split("/") if p]
        current = "/" if self.base.startswith("/") else ""
        for part in parts:
            current = posixpath.join(current, part) if current else part
            try:
                st = sftp.stat(current)
            except FileNotFoundError:
                sftp.mkdir(current, mode=0o700)
                continue
            if st.st_mode is not None and not stat_mod.S_ISDIR(st.st_mode):
                raise self.error(
                    ErrorCode.TARGET_NOT_FOUND,
                    f"{current} on the server is not a folder.",
                    f"Fix path in [targets.{self.name}].",
                )
        self._base_ready = True

    # Operations.

    def check(self) -> None:
        with self._errors("checking the folder"):
            sftp = self._client()
            try:
                st = sftp.stat(self.base)
            except FileNotFoundError:
                return  # made on the first upload
            if st.st_mode is not None and not stat_mod.S_ISDIR(st.st_mode):
                raise self.error(
                    ErrorCode.TARGET_NOT_FOUND,
                    f"{self.base} on the server is not a folder.",
                    f"Fix path in [targets.{self.name}].",
                )

    def put(self, name: str, source: Source) -> ObjectInfo:
        check_name(name, for_write=True)
        final = self._path(name)
        partial = final + PARTIAL_SUFFIX
        with self._errors("preparing the upload", name):
            sftp = self._client()
            self._ensure_base(sftp)
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(partial)  # a crashed run's; the project lock keeps pushes apart
            f = sftp.open(partial, "wb")
        try:
            try:
                with self._errors("writing", name):
                    f.chmod(0o600)
                    f.set_pipelined(True)
                for chunk in chunks_of(source):  # the source's own errors pass through
                    with self._errors("writing", name):
                        f.write(chunk)
                # Closing waits for every pipelined write's answer: a failed write shows here.
                with self._errors("writing", name):
                    f.flush()
                    self._fsync(sftp, f)
                    f.close()
            finally:
                with contextlib.suppress(Exception):
                    f.close()
            with self._errors("renaming the finished file", name):
                sftp.posix_rename(partial, final)
                attr = sftp.stat(final)
        except BaseException:
            self._remove_quietly(partial)
            raise
        return _info(name, attr)

    def _fsync(self, sftp: paramiko.SFTPClient, f: paramiko.SFTPFile) -> None:
        request: Any = getattr(sftp, "_request", None)
        if request is None:
            return
        try:
            request(CMD_EXTENDED, "fsync@openssh.com", f.handle)
        except OSError as exc:
            # Servers without the extension answer "unsupported": the rename still keeps
            # a half file from ever showing under the final name.
            if "unsupported" not in str(exc).lower():
                raise

    def _remove_quietly(self, path: str) -> None:
        sftp = self._sftp
        if sftp is None:
            return
        held = (
            signals.deferred(reraise=False)
            if threading.current_thread() is threading.main_thread()
            else contextlib.nullcontext()
        )
        with held, contextlib.suppress(Exception):
            sftp.remove(path)

    def get(self, name: str) -> Iterator[bytes]:
        path = self._path(check_name(name))
        with self._errors("downloading", name):
            f = self._client().open(path, "rb")
            try:
                size = f.stat().st_size or 0
            except BaseException:
                f.close()
                raise
        return self._stream(f, size, name)

    def _stream(self, f: paramiko.SFTPFile, size: int, name: str) -> Iterator[bytes]:
        # readv pipelines the requests of one window; a window at a time keeps memory flat
        # (paramiko's prefetch would hold the whole file if we fall behind).
        try:
            offset = 0
            while offset < size:
                window = min(READ_WINDOW, size - offset)
                ranges = [
                    (offset + i, min(READ_REQUEST, window - i))
                    for i in range(0, window, READ_REQUEST)
                ]
                with self._errors("downloading", name):
                    chunks = list(f.readv(ranges))
                for chunk in chunks:
                    if not chunk:
                        return
                    yield chunk
                offset += window
            # Bytes appended after our stat are not part of what was listed.
        finally:
            with contextlib.suppress(Exception):
                f.close()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        with self._errors("listing"):
            try:
                entries = self._client().listdir_attr(self.base)
            except FileNotFoundError:
                return []
        return sorted(
            (
                _info(a.filename, a)
                for a in entries
                if a.filename.startswith(prefix)
                and a.st_mode is not None
                and stat_mod.S_ISREG(a.st_mode)
            ),
            key=lambda o: o.name,
        )

    def delete(self, name: str) -> None:
        with self._errors("removing", name), contextlib.suppress(FileNotFoundError):
            self._client().remove(self._path(check_name(name)))

    def stat(self, name: str) -> ObjectInfo | None:
        with self._errors("reading", name):
            try:
                attr = self._client().stat(self._path(check_name(name)))
            except FileNotFoundError:
                return None
        if attr.st_mode is not None and not stat_mod.S_ISREG(attr.st_mode):
            return None
        return _info(name, attr)

    # Errors.

    @contextlib.contextmanager
    def _errors(self, doing: str, name: str | None = None) -> Iterator[None]:
        try:
            yield
        except RecoverctlError:
            raise
        except (EOFError, paramiko.SSHException, ConnectionError, TimeoutError) as exc:
            # The session is gone: the next call reconnects rather than reuse a dead one.
            self.close()
            raise self.error(
                ErrorCode.TARGET_UNREACHABLE,
                f"the connection was lost while {doing} ({_reason(exc)}).",
                "Check that the server is up and reachable, then try again.",
                name=name,
            ) from None
        except FileNotFoundError:
            if name is None:
                raise self.error(
                    ErrorCode.TARGET_NOT_FOUND,
                    f"{self.base} does not exist on the server.",
                    f"Fix path in [targets.{self.name}].",
                ) from None
            raise self.not_found(name) from None
        except PermissionError:
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"permission denied while {doing}.",
                f"Give user {self.user} write access to {self.base} on the server.",
                name=name,
            ) from None
        except OSError as exc:
            if exc.errno is None and self._sftp is not None and _is_closed(self._sftp):
                self.close()
                raise self.error(
                    ErrorCode.TARGET_UNREACHABLE,
                    f"the connection was lost while {doing}.",
                    "Check that the server is up and reachable, then try again.",
                    name=name,
                ) from None
            raise self.error(
                ErrorCode.TARGET_FAILED,
                f"the server failed while {doing} ({_reason(exc)}); its disk may be full.",
                "Check free space and the folder on the server, then try again.",
                name=name,
            ) from None


def _is_closed(sftp: paramiko.SFTPClient) -> bool:
    channel = sftp.get_channel()
    return channel is None or channel.closed


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return "connection refused"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text[:120] or type(exc).__name__


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _known_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _info(name: str, attr: paramiko.SFTPAttributes) -> ObjectInfo:
    return ObjectInfo(
        name=name,
        size=attr.st_size or 0,
        mtime=datetime.fromtimestamp(attr.st_mtime or 0, UTC),
    )
