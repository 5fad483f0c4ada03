"""e2e: the S3-over-TLS repository (tests/e2e/s3tls.py) is what pgBackRest tests need.

From the host (boto3 with the test CA) and from a container on the network (by its DNS
name, as the db container sees it): objects go in and come out over verified TLS; a client
without the CA, or asking for another name, is refused; the repository taken down refuses
connections and comes back with its objects; and, where the postgres image has pgBackRest,
a real stanza, check and full backup land in it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest
from botocore.exceptions import BotoCoreError, SSLError

from tests.e2e.s3tls import HOSTNAME, S3TlsServer, remove_named

pytestmark = pytest.mark.e2e

PREFIX = "rctl-e2e-s3tls"
CA_IN_CONTAINER = "/ca/ca.pem"

# Runs in a throwaway container on the network: an anonymous GET of url (public objects only), with the test CA or with the
# system's bundle only; prints "status body" (an HTTP error too) or, when no HTTP answer
# came, "error ReasonType reason" (exit 3).
PROBE = """
import ssl, sys, urllib.error, urllib.request
trust, url = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context(cafile=sys.argv[3] if trust == "ca" else None)
try:
    with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
        print(resp.status, resp.read().decode())
except urllib.error.HTTPError as exc:
    print(exc.code, exc.read().decode())
except urllib.error.URLError as exc:
    print("error", type(exc.reason).__name__, exc.reason)
    sys.exit(3)
"""


@pytest.fixture(scope="module")
def network(docker_client: docker.DockerClient) -> Iterator[str]:
    name = f"{PREFIX}-net"
    for stale in docker_client.networks.list(names=[name]):
        stale.remove()
    net = docker_client.networks.create(name, labels={"org.recoverctl.test": "s3tls"})
    yield name
    net.remove()


@pytest.fixture(scope="module")
def s3tls(
    docker_client: docker.DockerClient, network: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3TlsServer]:
    with S3TlsServer.start(
        docker_client, network, tmp_path_factory.mktemp("s3tls"), PREFIX
    ) as server:
        yield server


def new_bucket(server: S3TlsServer) -> str:
    name = f"rctl-{uuid.uuid4().hex[:12]}"
    server.client().create_bucket(Bucket=name)
    return name


def probe(server: S3TlsServer, url: str, *, trust: str = "ca") -> tuple[int, str]:
    """(exit code, output) of PROBE on the server's network, as the db container would."""
    client = server.engine
    container = client.containers.run(
        os.environ["PYTHON_IMAGE"],
        ["python3", "-c", PROBE, trust, url, CA_IN_CONTAINER],
        name=f"{PREFIX}-probe-{uuid.uuid4().hex[:8]}",
        network=server.network,
        volumes={str(server.folder): {"bind": "/ca", "mode": "ro"}},
        detach=True,
    )
    try:
        code = int(container.wait(timeout=60)["StatusCode"])
        return code, container.logs().decode(errors="replace").strip()
    finally:
        container.remove(force=True)


def test_host_client_round_trip_over_tls(s3tls: S3TlsServer) -> None:
    assert s3tls.host_endpoint.startswith("https://127.0.0.1:")
    assert s3tls.endpoint == f"https://{HOSTNAME}"
    assert s3tls.ca_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert s3tls.ca_path.stat().st_mode & 0o777 == 0o644
    bucket = new_bucket(s3tls)
    s3 = s3tls.client()
    s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"hello over tls")
    assert s3.get_object(Bucket=bucket, Key="dir/hello.txt")["Body"].read() == b"hello over tls"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == ["dir/hello.txt"]


def test_network_client_reads_by_name_with_the_ca(s3tls: S3TlsServer) -> None:
    bucket = new_bucket(s3tls)
    s3tls.client().put_object(
        Bucket=bucket, Key="k", Body=b"seen from the network", ACL="public-read"
    )
    code, out = probe(s3tls, f"{s3tls.endpoint}/{bucket}/k")
    assert (code, out) == (0, "200 seen from the network")


def test_tls_is_verified(s3tls: S3TlsServer) -> None:
    bucket = new_bucket(s3tls)
    # The host's system bundle (AWS_CA_BUNDLE or certifi) does not hold the test CA.
    with pytest.raises(SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        s3tls.client(verify=True).list_objects_v2(Bucket=bucket)
    code, out = probe(s3tls, f"{s3tls.endpoint}/{bucket}", trust="system")
    assert code == 3 and "SSLCertVerificationError" in out, out
    assert "unable to get local issuer certificate" in out, out
    # The right CA, the wrong name: the moto container's own name is not in the certificate.
    code, out = probe(s3tls, f"https://{s3tls.moto.name}/{bucket}")
    assert code == 3 and "Hostname mismatch" in out, out


def test_down_refuses_and_comes_back_with_its_objects(s3tls: S3TlsServer) -> None:
    bucket = new_bucket(s3tls)
    s3tls.client().put_object(Bucket=bucket, Key="kept", Body=b"still here", ACL="public-read")
    url = f"{s3tls.endpoint}/{bucket}/kept"
    for take_down in (s3tls.stop, s3tls.kill):
        take_down()
        try:
            code, out = probe(s3tls, url)
            assert code == 3 and "ConnectionRefusedError" in out, out
            assert not s3tls.answers()
            with pytest.raises(BotoCoreError):
                s3tls.client().get_object(Bucket=bucket, Key="kept")
        finally:
            s3tls.restart()
        assert s3tls.client().get_object(Bucket=bucket, Key="kept")["Body"].read() == b"still here"
        assert probe(s3tls, url) == (0, "200 still here")


# --- pgBackRest --------------------------------------------------------------------------

PG_SETUP = """
set -eu
initdb -D "$PGDATA" -U postgres --auth=trust >/dev/null
cat >> "$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
archive_mode = on
archive_command = 'pgbackrest archive-push %p'
EOF
pg_ctl -D "$PGDATA" -l /tmp/postgres.log -w start >/dev/null
"""


def has_pgbackrest(client: docker.DockerClient) -> bool:
    name = f"{PREFIX}-pgbackrest-version"
    remove_named(client, name)
    container = client.containers.create(
        os.environ["POSTGRES_IMAGE"], ["pgbackrest", "version"], entrypoint=[], name=name
    )
    try:
        container.start()
        return int(container.wait(timeout=60)["StatusCode"]) == 0
    except docker.errors.APIError:  # no such executable
        return False
    finally:
        container.remove(force=True)


def test_pgbackrest_backs_up_into_it_over_tls(
    s3tls: S3TlsServer, docker_client: docker.DockerClient
) -> None:
    if not has_pgbackrest(docker_client):
        # Never a skip: the db image must carry pgBackRest (scripts/test-env.sh builds it so).
        pytest.fail(f"{os.environ['POSTGRES_IMAGE']} has no pgbackrest: run make test-env")
    bucket = new_bucket(s3tls)
    env = {
        # The image's own configuration, if any, must not add repositories to this one.
        "PGBACKREST_CONFIG": "/dev/null",
        "PGBACKREST_STANZA": "s3tls",
        "PGBACKREST_PG1_PATH": "/var/lib/postgresql/data",
        "PGBACKREST_START_FAST": "y",
        # Small files bundled: moto closes the connection after every answer, so each
        # object is a TLS handshake of its own (about a thousand for an unbundled backup).
        "PGBACKREST_REPO1_BUNDLE": "y",
        "PGBACKREST_LOG_LEVEL_CONSOLE": "warn",
        "PGBACKREST_LOG_LEVEL_FILE": "off",
    }
    remove_named(docker_client, f"{PREFIX}-db")
    db = docker_client.containers.run(
        os.environ["POSTGRES_IMAGE"],
        ["sleep", "infinity"],
        entrypoint=[],
        name=f"{PREFIX}-db",
        network=s3tls.network,
        detach=True,
    )

    def run(*argv: str) -> tuple[int, str]:
        result = db.exec_run(list(argv), user="postgres", environment=env)
        assert result.exit_code is not None and isinstance(result.output, bytes)
        return result.exit_code, result.output.decode(errors="replace")

    try:
        # As into a stack's db container, whose mounts are fixed: copied in, not mounted.
        env |= s3tls.pgbackrest_env(bucket, ca_file=s3tls.copy_ca_into(db))
        for step in (["sh", "-c", PG_SETUP], ["pgbackrest", "stanza-create"], ["pgbackrest", "check"]):  # fmt: skip
            code, out = run(*step)
            assert code == 0, f"{step}: {out}"
        code, out = run("pgbackrest", "backup", "--type=full")
        assert code == 0, out
        code, out = run("pgbackrest", "info", "--output=json")
        assert code == 0, out
        info: list[dict[str, Any]] = json.loads(out)
        assert info[0]["status"]["code"] == 0, info
        assert [b["type"] for b in info[0]["backup"]] == ["full"]
        keys = [
            o["Key"]
            for page in s3tls.client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix="pgbackrest/")
            for o in page.get("Contents", [])
        ]
        assert any(k.startswith("pgbackrest/backup/s3tls/") for k in keys), keys
        assert any(k.startswith("pgbackrest/archive/s3tls/") for k in keys), keys

        # The repository down: pgBackRest says it cannot connect; back: the same backup.
        s3tls.stop()
        try:
            # info exits 0 and reports the repository's error in its status.
            code, out = run("pgbackrest", "info", "--output=json", "--io-timeout=1")
            assert code == 0, out
            status = json.loads(out)[0]["status"]
            assert status["code"] != 0, status
            assert "unable to connect to 's3.test:443'" in out and "Connection refused" in out, out
        finally:
            s3tls.restart()
        code, out = run("pgbackrest", "info", "--output=json")
        assert code == 0, out
        assert [b["label"] for b in json.loads(out)[0]["backup"]] == [
            b["label"] for b in info[0]["backup"]
        ]
    finally:
        db.remove(force=True, v=True)
