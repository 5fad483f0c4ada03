"""An S3 repository over real TLS on a Docker network, for the pgBackRest tests: no mocks.

pgBackRest, inside a stack's db container, speaks only HTTPS to S3, checks the certificate,
and treats a connection closed without a TLS close_notify as an error. moto's server closes
the connection after every answer, and in its own TLS mode without close_notify. So moto
(plain HTTP) runs behind Debian's stunnel, which closes properly, both from the image
`S3TLS_IMAGE` (scripts/test-env.sh builds it), with a test CA and a server certificate made
here for each server. Every request is still a TLS handshake of its own.

    with S3TlsServer.start(docker_client, "rctl-e2e-x_default", tmp_path, "rctl-e2e-x") as s3:
        s3.client().create_bucket(Bucket="repo")       # from the host, over TLS
        s3.endpoint        # https://s3.test: for containers on that network
        s3.ca_path         # tmp_path / "ca.pem", for the db container: mount its folder,
        ca = s3.copy_ca_into(db_container)             # or copy it in (/tmp/s3tls-ca.pem)
        s3.pgbackrest_env("repo", ca_file=ca)          # PGBACKREST_REPO1_*, path-style
        s3.stop(); ...; s3.restart()                  # the repository down, then back
        key, secret = s3.iam_key("pgbackrest")         # credentials moto can refuse:
        s3.require_signatures()                        # from now on only those pass

Two containers: `<prefix>-s3` runs moto on its own loopback (127.0.0.1:5000, out of reach
of everything but stunnel) and owns the network namespace, the network alias (`s3.test`)
and the port published on 127.0.0.1; `<prefix>-tls` runs stunnel on 443 in that same
namespace. Stopping only the terminator is "the repository is down": the name still
resolves, on the network the TLS port refuses connections (from the host, Docker's port
proxy accepts and then closes them), and moto keeps its objects for the restart.

Virtual-host addressing (`bucket.s3.test`) is not served: clients use path-style requests.

Credentials: moto takes any until require_signatures(); from then on it checks each request's
SigV4 signature against the IAM access keys it made (iam_key), pgBackRest's requests
included, and refuses the rest (InvalidAccessKeyId, SignatureDoesNotMatch: 403), client()
here too. require_signatures(False) lets anything through again.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import ipaddress
import json
import os
import ssl
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

import docker
import docker.errors
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.e2e.servers import AWS_ENV, LOOPBACK

if TYPE_CHECKING:
    from docker.models.containers import Container
    from mypy_boto3_s3 import S3Client

HOSTNAME = "s3.test"
REGION = AWS_ENV["AWS_DEFAULT_REGION"]
TLS_PORT = 443
# What stunnel's configuration in the image expects (scripts/images/s3tls/stunnel.conf).
STUNNEL = ["stunnel4", "/etc/stunnel/s3tls.conf"]
CERTS_PARENT = "/etc/stunnel"
LABEL = "org.recoverctl.test"


def s3tls_image(client: docker.DockerClient) -> str:
    image = os.environ.get("S3TLS_IMAGE")
    if not image:
        pytest.fail(
            "S3TLS_IMAGE is not set: run the e2e tests through `make test`, or source "
            "the S3TLS_IMAGE= line that `make test-env` prints.",
            pytrace=False,
        )
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"S3TLS_IMAGE={image} does not exist: run `make test-env`.", pytrace=False)
    return image


# --- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerCertificates:
    """A CA made for one server, and that server's certificate and key, all PEM."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def make(cls, hostname: str, ips: tuple[str, ...] = (LOOPBACK,)) -> ServerCertificates:
        now = datetime.datetime.now(datetime.UTC)
        # A little slack backwards: the containers' clocks are the host's, but a verifier
        # rejects a certificate whose notBefore is even a second ahead of it.
        valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recoverctl test CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(hostname)]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca_pem=ca.public_bytes(serialization.Encoding.PEM),
            cert_pem=cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def server_tar(self) -> bytes:
        """certs/server.pem and certs/server.key, for put_archive into the terminator."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            folder = tarfile.TarInfo("certs")
            folder.type, folder.mode = tarfile.DIRTYPE, 0o700
            tar.addfile(folder)
            for name, data, mode in (
                ("certs/server.pem", self.cert_pem, 0o644),
                ("certs/server.key", self.key_pem, 0o600),
            ):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _key_usage(**granted: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
         "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"),
        False,
    )  # fmt: skip
    return x509.KeyUsage(**(flags | granted))


# --- the server --------------------------------------------------------------------------


@dataclass
class S3TlsServer:
    engine: docker.DockerClient
    network: str
    folder: Path
    name_prefix: str
    hostname: str
    certs: ServerCertificates
    moto: Container
    tls: Container
    host_port: int

    @classmethod
    def start(
        cls,
        client: docker.DockerClient,
        network: str,
        folder: Path,
        name_prefix: str,
        *,
        hostname: str = HOSTNAME,
        timeout: float = 60,
    ) -> S3TlsServer:
        """Both containers up on `network` (which must exist) and answering over TLS."""
        image = s3tls_image(client)
        folder.mkdir(parents=True, exist_ok=True)
        # Readable through a bind mount by a container's non-root user (pgBackRest runs as
        # postgres): it holds only the CA certificate, nothing secret.
        folder.chmod(0o755)
        certs = ServerCertificates.make(hostname)
        (folder / "ca.pem").write_bytes(certs.ca_pem)
        (folder / "ca.pem").chmod(0o644)
        labels = {LABEL: "s3tls", f"{LABEL}.prefix": name_prefix}
        remove_named(client, f"{name_prefix}-tls", f"{name_prefix}-s3")
        moto = client.containers.create(
            image,
            name=f"{name_prefix}-s3",
            labels=labels,
            network=network,
            networking_config={network: client.api.create_endpoint_config(aliases=[hostname])},
            # Port 0: the engine picks a free one, no race with other tests.
            ports={f"{TLS_PORT}/tcp": (LOOPBACK, 0)},
            # Path-style only: moto would take the first label of a dotted Host such as
            # s3.test for a bucket name (virtual-host style).
            environment={"S3_IGNORE_SUBDOMAIN_BUCKETNAME": "true"},
        )
        tls: Container | None = None
        try:
            moto.start()
            tls = client.containers.create(
                image,
                STUNNEL,
                name=f"{name_prefix}-tls",
                labels=labels,
                network_mode=f"container:{moto.id}",
            )
            tls.put_archive(CERTS_PARENT, certs.server_tar())
            tls.start()
            server = cls(
                engine=client, network=network, folder=folder, name_prefix=name_prefix,
                hostname=hostname, certs=certs, moto=moto, tls=tls,
                host_port=_published_port(moto),
            )  # fmt: skip
            server.wait_ready(timeout)
        except BaseException:
            for c in (tls, moto):
                if c is not None:
                    _remove(c)
            raise
        return server

    # --- where it answers --------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """For containers on the network (the db container's pgBackRest)."""
        return f"https://{self.hostname}"

    @property
    def host_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.host_port}"

    @property
    def ca_path(self) -> Path:
        return self.folder / "ca.pem"

    def copy_ca_into(self, container: Container, directory: str = "/tmp") -> str:
        """ca.pem into a running container (one whose mounts are fixed, such as a stack's
        db), readable by every user; returns its path there. directory must exist."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("s3tls-ca.pem")
            info.size, info.mode = len(self.certs.ca_pem), 0o644
            tar.addfile(info, io.BytesIO(self.certs.ca_pem))
        if not container.put_archive(directory, buf.getvalue()):
            raise AssertionError(f"could not copy the CA into {container.name}:{directory}")
        return f"{directory.rstrip('/')}/s3tls-ca.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """The host's view: this server's CA only."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def client(self, *, verify: str | bool | None = None) -> S3Client:
        """boto3 from the host over TLS, trusting the test CA (verify: another bundle, or
        True for the system's, to see verification fail)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.host_endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
            verify=str(self.ca_path) if verify is None else verify,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def pgbackrest_env(
        self, bucket: str, *, ca_file: str, repo: int = 1, path: str = "/pgbackrest"
    ) -> dict[str, str]:
        """pgBackRest's settings for this repository as environment variables (the key
        and secret must not go on its command line); ca_file: where the db container
        sees ca.pem."""
        p = f"PGBACKREST_REPO{repo}_"
        return {
            f"{p}TYPE": "s3",
            f"{p}PATH": path,
            f"{p}S3_BUCKET": bucket,
            f"{p}S3_ENDPOINT": self.hostname,
            f"{p}S3_REGION": REGION,
            f"{p}S3_URI_STYLE": "path",
            f"{p}S3_KEY": AWS_ENV["AWS_ACCESS_KEY_ID"],
            f"{p}S3_KEY_SECRET": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            f"{p}STORAGE_CA_FILE": ca_file,
            f"{p}STORAGE_VERIFY_TLS": "y",
        }

    # --- credentials that count ----------------------------------------------------------

    def iam_key(self, user: str) -> tuple[str, str]:
        """An IAM user of moto's allowed every S3 action, and an access key of its: (key id,
        secret). Made while signatures are not checked (before require_signatures)."""
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.host_endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=REGION,
            verify=str(self.ca_path),
        )
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )  # fmt: skip
        made = iam.create_access_key(UserName=user)["AccessKey"]
        return made["AccessKeyId"], made["SecretAccessKey"]

    def require_signatures(self, on: bool = True) -> None:
        """From now on every request must be signed by an IAM access key of moto's (iam_key),
        or again any credentials pass (on False). moto's own switch, the one its server reads
        from INITIAL_NO_AUTH_ACTION_COUNT at start: the number of requests still let through
        unchecked, set through its API and counted from 0 again."""
        req = urllib.request.Request(
            f"{self.host_endpoint}/moto-api/reset-auth",
            data=b"0" if on else b"inf",
            method="POST",
            headers={"Content-Type": "text/plain"},  # moto reads the raw body
        )
        with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()) as resp:
            assert resp.status == 200, resp.read()

    # --- up and down -------------------------------------------------------------------

    def answers(self) -> bool:
        """moto's ListBuckets answered over verified TLS, from the host."""
        try:
            with urllib.request.urlopen(
                f"{self.host_endpoint}/", timeout=2, context=self.ssl_context()
            ) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in (self.moto, self.tls):
                c.reload()
                if c.status != "running":
                    pytest.fail(f"{c.name} is {c.status}: {self.logs()}", pytrace=False)
            if self.answers():
                return
            time.sleep(0.1)
        pytest.fail(f"S3 over TLS did not answer within {timeout} s: {self.logs()}", pytrace=False)

    def stop(self) -> None:
        """The repository down: the terminator stops, moto and its objects stay."""
        self.tls.stop(timeout=10)

    def kill(self) -> None:
        """Down at once, mid-request if one runs (SIGKILL to the terminator)."""
        self.tls.kill()
        self.tls.wait(timeout=10)

    def restart(self, timeout: float = 60) -> None:
        """Back up after stop() or kill(), same certificate, same objects."""
        self.tls.reload()
        if self.tls.status == "running":
            self.tls.restart(timeout=10)
        else:
            self.tls.start()
        self.wait_ready(timeout)

    def logs(self) -> str:
        out = []
        for c in (self.moto, self.tls):
            try:
                tail = c.logs(tail=10).decode(errors="replace").strip().splitlines()
            except docker.errors.APIError:
                tail = ["(no logs)"]
            out.append(f"{c.name}: " + " | ".join(tail))
        return "; ".join(out)

    def close(self) -> None:
        """Both containers removed (the terminator first: it lives in moto's namespace)."""
        _remove(self.tls)
        _remove(self.moto)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _published_port(container: Container) -> int:
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{TLS_PORT}/tcp") or []
    for b in bindings:
        if b.get("HostIp") == LOOPBACK:
            return int(b["HostPort"])
    raise AssertionError(f"{container.name} publishes no {LOOPBACK} port: {bindings}")


def _remove(container: Container) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True, v=True)


def remove_named(client: docker.DockerClient, *names: str) -> None:
    """Containers gone by name, if there: leftovers of a run that died before its cleanup."""
    for name in names:
        with contextlib.suppress(docker.errors.NotFound):
            _remove(client.containers.get(name))
