"""Real storage servers on loopback for the off-site tests: no mocks.

- `S3Server`: moto's S3 server (`moto_server -H 127.0.0.1 -p PORT`, from the dev extras).
  It accepts any credentials and does not check upload checksums: integrity tests corrupt
  objects themselves (`S3Server.client().put_object`).
- `SftpServer`: Debian's OpenSSH `sshd -D -f CONFIG` on a free loopback port, with its own
  host key, authorized_keys, a client key and a known_hosts file, all in a tmp folder.

Use the session fixtures `s3_server` and `sftp_server` (import them into the test module
or a conftest: `from tests.e2e.servers import s3_server, sftp_server`), or start a private
one when a test stops or kills it (`S3Server.start(folder)`, `SftpServer.start(folder)`,
both context managers). Each hands out settings tables ready for `Settings.targets`:
`s3_server.target_settings(bucket)`, `sftp_server.target_settings(path)`.

A missing tool is a failure that says how to get it, never a skip.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import pytest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

from recoverctl.settings import S3TargetSettings, SftpTargetSettings

LOOPBACK = "127.0.0.1"
SSHD = "/usr/sbin/sshd"
# moto accepts anything; fixed values keep the tests off a person's real AWS settings.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def require_tool(path: str, how: str) -> str:
    found = shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    if found is None:
        pytest.fail(f"{path} is missing: {how}", pytrace=False)
    return found


def _wait(
    check: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {_tail(log)}", pytrace=False)
        if check():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} did not answer within {timeout} s: {_tail(log)}", pytrace=False)


def _tail(log: Path) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen[bytes], sig: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _descendants(pid: int) -> list[int]:
    """Every process below pid (sshd forks one per connection, in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# --- S3 ----------------------------------------------------------------------------------


@dataclass
class S3Server:
    folder: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @classmethod
    def start(cls, folder: Path, port: int | None = None) -> S3Server:
        server = cls(folder=folder, port=port or free_port())
        server.launch()
        return server

    def launch(self) -> None:
        exe = require_tool(
            str(Path(sys.executable).parent / "moto_server"),
            "install the dev extras (make venv, or pip install -e '.[dev]'): moto[server].",
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "moto.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [exe, "-H", LOOPBACK, "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait(self._answers, "moto_server", self.proc, log)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        """Gone at once, mid-request if one is running (SIGKILL)."""
        if self.proc is not None:
            _stop(self.proc, signal.SIGKILL)

    def client(self) -> S3Client:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
            ),
        )

    def new_bucket(self, prefix: str = "rctl") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def target_settings(self, bucket: str, prefix: str = "prod/") -> S3TargetSettings:
        return S3TargetSettings(
            type="s3", bucket=bucket, prefix=prefix, endpoint_url=self.endpoint, region="us-east-1"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The standard AWS chain pointed at moto's dummy credentials, for this test only."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    return dict(AWS_ENV)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with S3Server.start(tmp_path_factory.mktemp("moto")) as server:
        yield server


# --- SFTP --------------------------------------------------------------------------------


def keygen(path: Path, comment: str = "recoverctl-test") -> Path:
    """A new ed25519 key pair without passphrase: path and path.pub."""
    exe = require_tool("ssh-keygen", "apt-get install openssh-client (make test-env does it).")
    subprocess.run(
        [exe, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@dataclass
class SftpServer:
    folder: Path
    port: int
    user: str = field(default_factory=getpass.getuser)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host_key(self) -> Path:
        return self.folder / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.folder / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def root(self) -> Path:
        """A folder on the server for the tests' target paths (absolute paths, so the
        user's real home is never written)."""
        return self.folder / "storage"

    @property
    def known_hosts_line(self) -> str:
        kind, blob = self.host_key.with_name(self.host_key.name + ".pub").read_text().split()[:2]
        return f"[{LOOPBACK}]:{self.port} {kind} {blob}"

    @classmethod
    def start(cls, folder: Path, port: int | None = None) -> SftpServer:
        server = cls(folder=folder, port=port or free_port())
        server.prepare()
        server.launch()
        return server

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.root.mkdir(mode=0o700, exist_ok=True)
        if not self.host_key.exists():
            keygen(self.host_key, "recoverctl-test-host")
        if not self.client_key.exists():
            keygen(self.client_key)
        authorized = self.folder / "authorized_keys"
        authorized.write_text(self.client_key.with_name(self.client_key.name + ".pub").read_text())
        authorized.chmod(0o600)
        self.known_hosts.write_text(self.known_hosts_line + "\n")
        (self.folder / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {LOOPBACK}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    f"AllowUsers {self.user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    # pytest's tmp folders sit under the world-writable /tmp.
                    "StrictModes no",
                    "UsePAM no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def launch(self) -> None:
        exe = require_tool(SSHD, "apt-get install openssh-server (make test-env does it).")
        if os.geteuid() == 0:
            # sshd's privilege separation folder; Debian creates it only when the service starts.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = self.folder / "sshd.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [exe, "-D", "-e", "-f", str(self.folder / "sshd_config")],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait(self._answers, "sshd", self.proc, log)

    def _answers(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1) as s:
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def stop(self) -> None:
        """The listener and every session it forked."""
        if self.proc is None:
            return
        sessions = _descendants(self.proc.pid)
        _stop(self.proc, signal.SIGTERM)
        for pid in sessions:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill(self) -> None:
        """Everything at once, mid-transfer if one runs: sessions first, then the listener."""
        if self.proc is None:
            return
        for pid in _descendants(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _stop(self.proc, signal.SIGKILL)

    def log(self) -> str:
        return (self.folder / "sshd.log").read_text(errors="replace")

    def target_settings(
        self,
        path: str | Path,
        *,
        key_file: Path | None = None,
        known_hosts: Path | None = None,
    ) -> SftpTargetSettings:
        return SftpTargetSettings(
            type="sftp",
            host=LOOPBACK,
            port=self.port,
            user=self.user,
            path=str(path),
            key_file=key_file or self.client_key,
            known_hosts=known_hosts or self.known_hosts,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    with SftpServer.start(tmp_path_factory.mktemp("sshd")) as server:
        yield server
