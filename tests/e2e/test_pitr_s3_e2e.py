"""e2e: point-in-time recovery to an S3 repository over real TLS (tests/e2e/s3tls.py: moto
behind stunnel, on the stack's own compose network as `s3.test`), and its failure paths:
the repository down while the vault takes writes, a bucket that is not there, wrong
credentials, and the db killed mid-archive; each checks what a user sees and that nothing was
lost.

One target, `[targets.offsite]` (endpoint_url https://s3.test, ca_file the test CA), is both
the pgBackRest repository and where `pitr enable` seals the env copies. The db container
reaches `s3.test` by its network alias; recoverctl on the host cannot resolve that name, so
its runs get HTTPS_PROXY pointing at a CONNECT proxy here that opens s3.test:443 to the
server's port published on 127.0.0.1. The TLS session still runs end to end between
recoverctl and stunnel, the certificate checked for s3.test against the target's ca_file:
the proxy only stands in for a DNS record, as a real endpoint's name would resolve on both
sides.

Credentials: recoverctl reads them from the AWS chain (the environment of its runs, a secret
of this run's own so that it can be looked for) and writes them only into the db service's
private env file. moto's server accepts any credentials until told to check signatures
(S3TlsServer.require_signatures): the test of wrong credentials gives the db an IAM access
key of moto's, turns the checks on for its own span, and gives the db a wrong secret, then
the right one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import docker
import pytest

from recoverctl.adapters import seal
from recoverctl.cli import contract
from tests.e2e.conftest import FAULTS, Project, make_project, tear_down
from tests.e2e.s3tls import TLS_PORT, S3TlsServer
from tests.e2e.servers import AWS_ENV, LOOPBACK

NAME = os.environ.get("RCTL_E2E_PITR_S3_NAME", "rctl-e2e-pitrs3")
BUCKET = "rctl-pitrs3"
REPO_PATH = f"{NAME}/dev/pgbackrest"
SECRET = "rctlPitrS3" + secrets.token_hex(12)  # moto takes any secret; this one is findable
IO_TIMEOUT = 2
ARCHIVE_TIMEOUT = 2
WAL_MAX_MIB = 1024  # the settings' default: past it pgBackRest would drop segments


# --- a CONNECT proxy standing in for s3.test's DNS record on the host -----------------------


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, routes: dict[str, tuple[str, int]]) -> None:
        self.routes = routes
        super().__init__((LOOPBACK, 0), _Tunnel)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Tunnel(socketserver.BaseRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        method, where, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        route = self.server.routes.get(where)
        if method != "CONNECT" or route is None:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        try:
            upstream = socket.create_connection(route, timeout=5)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        upstream.settimeout(None)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        back.start()
        _pipe(client, upstream)
        back.join(timeout=30)
        upstream.close()


# --- the world ---------------------------------------------------------------------------


@dataclass
class World:
    project: Project
    s3: S3TlsServer
    proxy: ConnectProxy
    committed: list[str] = field(default_factory=list)  # every canary ever committed

    @property
    def aws(self) -> dict[str, str]:
        return {
            **AWS_ENV,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "HTTPS_PROXY": self.proxy.url,
            "https_proxy": self.proxy.url,
            "NO_PROXY": "localhost,127.0.0.1",
            "no_proxy": "localhost,127.0.0.1",
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.project.run(*args, **{**self.aws, **env})  # type: ignore[arg-type]

    def ok(self, *args: str) -> dict[str, Any]:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        document = json.loads(done.stdout)
        contract.validate(document)
        return dict(document["result"])

    def failed(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = self.run(*args, "--json")
        document = json.loads(done.stdout)
        contract.validate(document)
        assert not document["ok"], document
        return done.returncode, dict(document["error"])

    def insert(self, value: str) -> bool:
        """A canary row; True once committed (psql's exit 0)."""
        code, _ = self.project.container("db").exec_run(
            ["psql", "-U", self.project.env["POSTGRES_USER"], "-d", self.project.env["POSTGRES_DB"],
             "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c",
             f"INSERT INTO canary(v) VALUES ('{value}')"],
        )  # fmt: skip
        if code == 0:
            self.committed.append(value)
        return bool(code == 0)

    def canary(self, value: str) -> datetime:
        out = self.project.sql(
            f"INSERT INTO canary(v) VALUES ('{value}') RETURNING "
            "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
        self.committed.append(value)
        return datetime.fromisoformat(out.strip().splitlines()[0])

    def canaries(self) -> set[str]:
        return set(self.project.sql("SELECT v FROM canary").split())

    def archive(self) -> dict[str, Any]:
        return dict(self.ok("pitr", "status")["archive"])

    def wait_archive(self, until: Any, timeout: float, what: str) -> tuple[dict[str, Any], float]:
        """Polls pitr status until until(archive) holds; the archive and how long it took."""
        t0 = time.monotonic()
        archive = self.archive()
        while not until(archive):
            assert time.monotonic() - t0 < timeout, f"{what} not within {timeout} s: {archive}"
            time.sleep(1)
            archive = self.archive()
        return archive, time.monotonic() - t0

    def caught_up(self, timeout: float = 30) -> float:
        _, took = self.wait_archive(
            lambda a: not a["failing"] and a["ready_segments"] == 0, timeout, "archiving caught up"
        )
        return took

    def throwaways(self) -> list[str]:
        label: dict[str, Any] = {"label": f"com.docker.compose.project={NAME}-pitr"}
        c = self.project.client
        return [str(x.name) for x in c.containers.list(all=True, filters=label)] + [
            v.name for v in c.volumes.list(filters=label)
        ]

    def objects(self, prefix: str) -> list[str]:
        listed = self.s3.client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("pitrs3")
    project = make_project(root / "project", NAME, docker_client)
    project.force_clean()
    project.write_env(".env")
    up = project.run("up")
    assert up.returncode == 0, up.stderr
    s3 = S3TlsServer.start(docker_client, f"{NAME}_default", root / "s3ca", NAME)
    proxy = ConnectProxy({f"{s3.hostname}:{TLS_PORT}": (LOOPBACK, s3.host_port)})
    try:
        s3.client().create_bucket(Bucket=BUCKET)
        recipient = seal.new_identity(root / "identity.txt")
        (project.root / "recoverctl-config.toml").write_text(
            f'[encryption]\nrecipients = ["{recipient}"]\n\n'
            f'[targets.offsite]\ntype = "s3"\nbucket = "{BUCKET}"\n'
            f'endpoint_url = "{s3.endpoint}"\nregion = "us-east-1"\nca_file = "{s3.ca_path}"\n\n'
            f'[pitr]\nrepos = ["offsite"]\narchive_timeout = "{ARCHIVE_TIMEOUT}s"\n'
            f'io_timeout = "{IO_TIMEOUT}s"\n'
        )
        yield World(project, s3, proxy)
    finally:
        proxy.close()
        s3.close()
        tear_down(project)
        for c in docker_client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={NAME}-pitr"}
        ):
            c.remove(force=True, v=True)


@pytest.fixture(scope="module")
def enabled(world: World) -> dict[str, Any]:
    result = world.ok("pitr", "enable", "--yes")
    world.project.sql(
        "CREATE TABLE canary (v text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    return result


def _argv_in_db(world: World) -> str:
    """Every process's argv in the db container, NULs as spaces."""
    code, out = world.project.container("db").exec_run(
        ["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"]
    )
    assert code == 0, out
    return str(out.decode(errors="replace"))


def test_enable_archives_to_s3_and_restores_to_a_time(
    world: World, enabled: dict[str, Any]
) -> None:
    root = world.project.root
    assert enabled["restarted"] and enabled["new_passphrase"]
    (repo,) = enabled["repos"]
    assert repo["kind"] == "s3" and repo["location"] == f"s3://{BUCKET}/{REPO_PATH}"
    assert len(enabled["full_backups"]) == 1 and enabled["full_backups"][0].startswith("offsite: ")
    assert enabled["env_push"]["ok"] and ".env.pitr" in enabled["env_push"]["files"]
    # The repository really is in the bucket, and so is the sealed passphrase.
    assert f"{REPO_PATH}/backup/vault/backup.info" in world.objects(REPO_PATH)
    assert any(k.startswith(f"{NAME}/env/") for k in world.objects(f"{NAME}/env/"))
    # The S3 secret is in the db's private env file and the db's environment, nowhere else.
    env_file = root / ".recoverctl" / f"pitr-{NAME}.env"
    assert f"PGBACKREST_REPO1_S3_KEY_SECRET={SECRET}" in env_file.read_text().splitlines()
    db = world.project.container("db").attrs
    assert f"PGBACKREST_REPO1_S3_KEY_SECRET={SECRET}" in db["Config"]["Env"]
    assert SECRET not in json.dumps(db["Config"]["Cmd"])
    assert SECRET not in (root / ".recoverctl" / f"pitr-{NAME}.yml").read_text()
    backend = world.project.container("backend").attrs["Config"]["Env"]
    assert not [e for e in backend if e.startswith("PGBACKREST_") or SECRET in e]
    world.canary("argv")  # an archive-push or two run while the argv are read
    assert SECRET not in _argv_in_db(world)

    status = world.ok("pitr", "status")
    assert status["ok"] and not status["archive"]["failing"]
    (held,) = status["repos"]
    assert held["ok"] and held["kind"] == "s3" and held["earliest"] is not None

    world.canary("before")
    time.sleep(1.5)
    middle = datetime.now(UTC)
    time.sleep(1.5)
    world.canary("after")
    result = world.ok("restore", "--to-time", middle.isoformat(), "--yes")
    point = result["point_in_time"]
    assert datetime.fromisoformat(point["reached"]) <= middle and point["repo"] == "offsite"
    rows = world.canaries()
    assert "before" in rows and "after" not in rows
    world.committed.remove("after")  # rolled back on purpose
    assert world.throwaways() == []


def test_repository_down_the_vault_serves_and_archiving_catches_up(
    world: World, enabled: dict[str, Any]
) -> None:
    world.caught_up()
    world.s3.stop()
    down = polled = time.monotonic()
    down_at = datetime.now(UTC)
    first_failing: float | None = None
    worst_wal = 0
    archive: dict[str, Any] = {}
    try:
        i = 0
        # pgBackRest retries a refused connection for about 4 io_timeouts per request, and
        # archive-push makes a few: writes go on until the failure shows, 20 s at least.
        while time.monotonic() - down < 20 or (
            first_failing is None and time.monotonic() - down < 60
        ):
            assert world.insert(f"outage-{i}"), "the vault refused a write with S3 down"
            i += 1
            if time.monotonic() - polled > 2:
                polled = time.monotonic()
                archive = world.archive()
                worst_wal = max(worst_wal, archive["pg_wal_bytes"])
                if first_failing is None and archive["failing"]:
                    first_failing = time.monotonic() - down
        assert world.project.get("/healthz")[0] == 200
        archive = world.archive()
        worst_wal = max(worst_wal, archive["pg_wal_bytes"])
        assert archive["failing"] and archive["last_failed_at"] is not None, archive
        assert archive["ready_segments"] > 0, archive
        failed_at = datetime.fromisoformat(archive["last_failed_at"])
        print(f"\nfirst push failure {(failed_at - down_at).total_seconds():.1f} s after the stop")
        assert first_failing is not None and first_failing < 60, first_failing
        assert worst_wal < WAL_MAX_MIB * 2**20, worst_wal
        # What a user asking for a base backup now reads, and how fast pgBackRest gives up.
        t0 = time.monotonic()
        code, error = world.failed("pitr", "backup", "--type", "incr")
        backup_fails_in = time.monotonic() - t0
        assert code == 1 and error["code"] == "pitr_failed", error
        assert len(error["message"].splitlines()) <= 2 and len(error["message"]) < 400, error
        assert backup_fails_in < 60, backup_fails_in
    finally:
        world.s3.restart()
    caught_up = world.caught_up(30)
    print(
        f"\noutage: {i} rows; status failing after {first_failing:.1f} s; pg_wal at most "
        f"{worst_wal / 2**20:.0f} MiB; backup failed in {backup_fails_in:.1f} s: "
        f"{error['message']}; caught up {caught_up:.1f} s after the restart"
    )
    result = world.ok("restore", "--to-time", "latest", "--yes")
    assert result["point_in_time"]["asked_at"] is None
    missing = [v for v in world.committed if v not in world.canaries()]
    FAULTS.record(safe=not missing, lost=bool(missing))
    assert not missing, missing


def test_a_bucket_that_is_not_there_fails_visibly_and_loses_nothing(
    world: World, enabled: dict[str, Any]
) -> None:
    env_file = world.project.root / ".recoverctl" / f"pitr-{NAME}.env"
    good = env_file.read_text()
    bad = good.replace(
        f"PGBACKREST_REPO1_S3_BUCKET={BUCKET}\n", f"PGBACKREST_REPO1_S3_BUCKET={BUCKET}-gone\n"
    )
    assert bad != good
    env_file.write_text(bad)
    try:
        up = world.run("up")
        assert up.returncode == 0, up.stderr
        for i in range(5):
            assert world.insert(f"nobucket-{i}"), "the vault refused a write"
        # Seconds, not checkpoint_timeout's 5 min: up wakes the recreated db's checkpointer,
        # which switches the segment these rows are in after archive_timeout.
        archive, _ = world.wait_archive(lambda a: a["failing"], 20, "status failing")
        assert archive["last_failed_at"] is not None
        assert world.project.get("/healthz")[0] == 200
        code, error = world.failed("pitr", "backup", "--type", "incr")
        print(f"\nmissing bucket: {error['message']} / {error['hint']}")
        assert code == 1 and error["code"] == "pitr_failed", error
        assert len(error["message"].splitlines()) <= 2 and len(error["message"]) < 400, error
        # moto answers NoSuchBucket (404), which pgBackRest reads as a file missing: what a
        # user reads is that the repository's backup.info is not where the db looks.
        assert "missing file" in error["message"] and "backup.info" in error["message"], error
    finally:
        env_file.write_text(good)
    up = world.run("up")
    assert up.returncode == 0, up.stderr
    world.caught_up(30)
    # Every segment written while the bucket was missing reached the repository after all.
    archive = world.archive()
    FAULTS.record(safe=archive["ready_segments"] == 0 and not archive["failing"])


def _with_access(env_text: str, key: str, secret: str) -> str:
    """The db's private env file with another S3 access key and secret."""
    out = []
    for line in env_text.splitlines(keepends=True):
        if line.startswith("PGBACKREST_REPO1_S3_KEY="):
            line = f"PGBACKREST_REPO1_S3_KEY={key}\n"
        elif line.startswith("PGBACKREST_REPO1_S3_KEY_SECRET="):
            line = f"PGBACKREST_REPO1_S3_KEY_SECRET={secret}\n"
        out.append(line)
    return "".join(out)


def test_wrong_s3_credentials_fail_visibly_and_archiving_catches_up(
    world: World, enabled: dict[str, Any]
) -> None:
    """A wrong secret in archive_command's environment, with moto checking signatures: the
    vault serves, status and doctor say archiving fails, a base backup's error is short;
    with the right secret back (signatures still checked) the archive catches up."""
    from botocore.exceptions import ClientError

    world.caught_up()
    env_file = world.project.root / ".recoverctl" / f"pitr-{NAME}.env"
    good = env_file.read_text()
    key, secret = world.s3.iam_key("pgbackrest")
    wrong_secret = "Wrong" + secret[5:]
    assert wrong_secret != secret
    env_file.write_text(_with_access(good, key, wrong_secret))
    try:
        up = world.run("up")
        assert up.returncode == 0, up.stderr
        world.s3.require_signatures()
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            world.s3.client().list_buckets()  # the module's own credentials count no more
        for i in range(5):
            assert world.insert(f"badkey-{i}"), "the vault refused a write"
        archive, took = world.wait_archive(lambda a: a["failing"], 20, "status failing")
        assert archive["last_failed_at"] is not None and archive["ready_segments"] > 0, archive
        assert world.project.get("/healthz")[0] == 200
        done = world.run("doctor", "--only", "pitr.archiving", "--json")
        (row,) = json.loads(done.stdout)["result"]["checks"]
        assert done.returncode == 1 and row["status"] == "fail", row
        assert "archiving fails" in row["evidence"], row
        code, error = world.failed("pitr", "backup", "--type", "incr")
        print(f"\nwrong secret: status failing after {took:.1f} s; {error['message']}")
        assert code == 1 and error["code"] == "pitr_failed", error
        assert len(error["message"].splitlines()) <= 2 and len(error["message"]) < 400, error
        # S3's own word for it, not pgBackRest's closing hint (stanza-create?).
        assert "403" in error["message"] and "SignatureDoesNotMatch" in error["message"], error
        assert "stanza-create" not in error["message"], error
        said = json.dumps(error) + done.stdout
        assert secret not in said and wrong_secret not in said
        # The right secret back, signatures still checked: what waited goes now.
        env_file.write_text(_with_access(good, key, secret))
        up = world.run("up")
        assert up.returncode == 0, up.stderr
        world.caught_up(30)
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            world.s3.client().list_buckets()  # still checking
    finally:
        world.s3.require_signatures(False)
        env_file.write_text(good)
    up = world.run("up")
    assert up.returncode == 0, up.stderr
    world.ok("restore", "--to-time", "latest", "--yes")
    missing = [v for v in world.committed if v not in world.canaries()]
    FAULTS.record(safe=not missing, lost=bool(missing))
    assert not missing, missing


def test_db_killed_mid_archive_loses_no_committed_row(
    world: World, enabled: dict[str, Any]
) -> None:
    db = world.project.container("db")
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set() and world.insert(f"kill-{i}"):
            i += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    # Killed while an archive-push runs, if one is caught within 10 s.
    caught = False
    deadline = time.monotonic() + 10
    while not caught and time.monotonic() < deadline:
        caught = "archive-push" in _argv_in_db(world)
    db.kill()
    writer.join(timeout=30)
    stop.set()
    up = world.run("up")
    assert up.returncode == 0, up.stderr
    world.project.wait_healthy()
    live = world.canaries()
    assert [v for v in world.committed if v not in live] == []
    world.insert("after-kill")
    world.caught_up(30)
    world.ok("restore", "--to-time", "latest", "--yes")
    missing = [v for v in world.committed if v not in world.canaries()]
    print(f"\nkill -9 {'during' if caught else 'not during'} an archive-push; "
          f"{len(world.committed)} rows checked")  # fmt: skip
    FAULTS.record(safe=not missing, lost=bool(missing))
    assert not missing, missing
    assert world.throwaways() == []


def test_nothing_of_the_repository_is_in_clear(world: World, enabled: dict[str, Any]) -> None:
    """The bucket holds the archive encrypted: no object names the canary table in clear."""
    client = world.s3.client()
    keys = world.objects(REPO_PATH)
    assert any("/archive/vault/" in k for k in keys)
    for key in keys[:50]:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert b"canary" not in body, key
