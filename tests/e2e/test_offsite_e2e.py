"""Off-site copies against the real stack and real servers on loopback: a folder, moto's S3
server and OpenSSH's sftp. backup pushes to all three; list, verify, pull, restore and
recover take their file from a target (recover on a machine whose backups are gone);
Debian's `age` opens what was pushed; and every failure path the issue names, counted in
the fault-injection summary: each exits with its one- or two-line error, no traceback, the
local backup intact and nothing complete-looking left behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.adapters import seal
from recoverctl.cli import contract
from tests.e2e import servers
from tests.e2e.conftest import FAULTS, Project, make_project, tear_down, up_seeded
from tests.e2e.servers import AWS_ENV, S3Server, SftpServer, keygen, require_tool
from tests.e2e.vaultclient import Vault
from tests.keywriter import make_keyfile
from tests.playbook import PLAYBOOK, is_offsite, playbook_commands
from tests.unit.fakes import write_backup_file

pytestmark = pytest.mark.e2e

s3_server = servers.s3_server
sftp_server = servers.sftp_server

MiB = 1 << 20
SIGNALS = [signal.SIGINT, signal.SIGTERM]
# The playbook's placeholders, and what they stand for here.
IDENTITY_PLACEHOLDER = "/safe/place/vault-backups.age.txt"
CHECK_PLACEHOLDER = "/tmp/offsite-check"
# Where this project's and stack's objects are inside each target's path or prefix.
NAMESPACE = "rctl-e2e-offsite/dev"


@dataclass
class World:
    project: Project
    vault: Vault
    root: Path
    identity: Path
    recipient: str
    nas: Path
    bucket: str
    s3: S3Server
    sftp: SftpServer
    box: Path
    targets: dict[str, str] = field(default_factory=dict)  # name -> settings table

    def configure(self, *names: str, extra: str = "", recipients: bool = True) -> None:
        """The settings file with these targets (default: nas, offsite, box)."""
        keys = f'recipients = ["{self.recipient}"]\n' if recipients else ""
        tables = "".join(self.targets[n] for n in (names or ("nas", "offsite", "box")))
        key = self.root / "safe" / "alice.zkkey.json"
        (self.project.root / "recoverctl-config.toml").write_text(
            f'[recoverctl]\nkey_file = "{key}"\n\n[encryption]\n{keys}\n{tables}{extra}'
        )

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.project.run(*args, **{**AWS_ENV, **env})  # type: ignore[arg-type]

    def ok(self, *args: str, **env: str) -> dict[str, Any]:
        done = self.run(*args, "--json", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        document = json.loads(done.stdout)
        contract.validate(document)
        return dict(document["result"])

    def backups(self) -> dict[str, str]:
        """The local backups folder, hashed: a failure must never change it."""
        folder = self.project.root / "backups"
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(".verify.json")
        }

    def latest(self) -> Path:
        from recoverctl.core.naming import is_backup_name, sort_key

        folder = self.project.root / "backups"
        names = [p.name for p in folder.iterdir() if is_backup_name(p.name)]
        return folder / max(names, key=sort_key)

    def newest_on(self, target: str) -> str:
        listing = self.ok("list", "--target", target)
        return str(next(b["name"] for b in listing["backups"] if b["complete"]))


def table(name: str, **values: object) -> str:
    lines = [f"[targets.{name}]"]
    for key, value in values.items():
        lines.append(f"{key} = {json.dumps(value) if not isinstance(value, int) else value}")
    return "\n".join(lines) + "\n\n"


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    s3_server: S3Server,
    sftp_server: SftpServer,
) -> Iterator[World]:
    require_tool("age", "apt-get install age (make test-env does it).")
    root = tmp_path_factory.mktemp("offsite")
    project = make_project(root / "project", "rctl-e2e-offsite", docker_client)
    vault = up_seeded(project)
    safe = root / "safe"
    safe.mkdir(mode=0o700)
    identity = safe / "identity.txt"
    recipient = seal.new_identity(identity)
    # recover's checks want the key export the vault's secrets open with, as a user keeps it.
    key = safe / "alice.zkkey.json"
    key.write_text(json.dumps(make_keyfile(vault.alice_key, "passphrase", iterations=100_000)))
    key.chmod(0o600)
    nas = root / "nas"
    nas.mkdir()
    bucket = s3_server.new_bucket("vault")
    box = sftp_server.root / root.name / "vault"
    w = World(project, vault, root, identity, recipient, nas / NAMESPACE, bucket, s3_server,
              sftp_server, box / NAMESPACE)  # fmt: skip
    s3 = s3_server.target_settings(bucket)
    sftp = sftp_server.target_settings(box)
    w.targets = {
        "nas": table("nas", type="dir", path=str(nas)),
        "offsite": table("offsite", type="s3", bucket=bucket, prefix=s3.prefix,
                         endpoint_url=s3.endpoint_url, region="us-east-1"),
        "box": table("box", type="sftp", host=sftp.host, port=sftp.port, user=sftp.user,
                     path=str(box), key_file=str(sftp.key_file),
                     known_hosts=str(sftp.known_hosts)),
    }  # fmt: skip
    w.configure()
    yield w
    tear_down(project)


def s3_objects(w: World) -> dict[str, bytes]:
    client = w.s3.client()
    listed = client.list_objects_v2(Bucket=w.bucket, Prefix=f"prod/{NAMESPACE}/").get(
        "Contents", []
    )
    return {
        o["Key"].removeprefix(f"prod/{NAMESPACE}/"): client.get_object(
            Bucket=w.bucket, Key=o["Key"]
        )["Body"].read()
        for o in listed
    }


def age_decrypt(identity: Path, data: bytes) -> bytes:
    done = subprocess.run(
        ["age", "-d", "-i", str(identity)], input=data, capture_output=True, check=True
    )
    return done.stdout


def two_lines(stderr: str) -> tuple[str, str]:
    """A failure a person reads: `error:` and `hint:`, nothing else, no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("failpoint ")]
    assert "Traceback" not in stderr, stderr
    assert [ln.split(":")[0] for ln in lines] == ["error", "hint"], stderr
    return lines[0], lines[1]


def record(w: World, before: dict[str, str], *, safe: bool, misleading: int = 0) -> None:
    after = w.backups()
    lost = any(after.get(name) != digest for name, digest in before.items())
    partials = [n for n in after if n.endswith(".partial")]
    FAULTS.record(safe=safe and not lost, lost=lost, misleading=misleading + len(partials))


# --- the happy path ----------------------------------------------------------------------


def test_backup_pushes_to_every_target_sealed(world: World) -> None:
    w = world
    made = w.ok("backup")
    name = Path(made["path"]).name
    copies = {c["target"]: c for c in made["offsite"]}
    assert {t: c["status"] for t, c in copies.items()} == {
        "box": "pushed",
        "nas": "pushed",
        "offsite": "pushed",
    }
    expected = [name + ".age", name + ".age.manifest.json", name + ".json.age"]
    assert sorted(os.listdir(w.nas)) == expected
    assert sorted(os.listdir(w.box)) == expected
    objects = s3_objects(w)
    assert sorted(objects) == expected
    assert w.s3.client().list_multipart_uploads(Bucket=w.bucket).get("Uploads", []) == []
    # Nothing in clear reveals the vault: no table name, no row count, in any object.
    local_manifest = json.loads(Path(made["manifest"]).read_text())
    for data in [*objects.values(), *((w.nas / n).read_bytes() for n in expected)]:
        for table_name in local_manifest["tables"]:
            assert table_name.split(".")[-1].encode() not in data
    remote = json.loads(objects[name + ".age.manifest.json"])
    assert remote["recipients"] == [w.recipient] and remote["plain_size"] == made["size"]
    assert remote["data"]["sha256"] == hashlib.sha256(objects[name + ".age"]).hexdigest()
    for target in ("nas", "offsite", "box"):
        listing = w.ok("list", "--target", target)
        assert [(b["name"], b["complete"]) for b in listing["backups"]] == [(name, True)]
    human = w.run("list", "--target", "box")
    assert name in human.stdout and "complete" in human.stdout


def test_debian_age_opens_what_was_pushed(world: World) -> None:
    """The way to recover without recoverctl (playbook.md): age -d -i KEY FILE gives the
    exact bytes of the local backup, and of its manifest."""
    w = world
    local = w.latest()
    objects = s3_objects(w)
    out = w.root / "by-hand.dump"
    subprocess.run(
        ["age", "-d", "-i", str(w.identity), "-o", str(out), str(w.nas / (local.name + ".age"))],
        check=True,
    )
    assert out.read_bytes() == local.read_bytes()
    assert age_decrypt(w.identity, objects[local.name + ".age"]) == local.read_bytes()
    assert (
        age_decrypt(w.identity, (w.box / (local.name + ".age")).read_bytes()) == local.read_bytes()
    )
    manifest = age_decrypt(w.identity, objects[local.name + ".json.age"])
    assert manifest == local.with_name(local.name + ".json").read_bytes()


def test_pull_and_verify_from_the_targets(world: World) -> None:
    w = world
    local = w.latest()
    out = w.root / "pulled"
    pulled = w.ok("pull", "latest", "--target", "offsite", "--identity", str(w.identity),
                  "--output-dir", str(out))  # fmt: skip
    assert (out / local.name).read_bytes() == local.read_bytes()
    assert (out / (local.name + ".json")).read_bytes() == local.with_name(
        local.name + ".json"
    ).read_bytes()
    assert pulled["sealed_sha256"] == hashlib.sha256(s3_objects(w)[local.name + ".age"]).hexdigest()
    sealed = w.ok("verify", "latest", "--target", "box")
    assert sealed["ok"] and not sealed["decrypted"]
    deep = w.ok("verify", local.name, "--target", "nas", "--deep",
                RECOVERCTL_IDENTITY_FILE=str(w.identity))  # fmt: skip
    assert deep["ok"] and deep["decrypted"] and deep["deep"]
    assert {"offsite", "integrity", "restore", "rows"} <= {c["name"] for c in deep["checks"]}
    # The scratch copy is gone; the verification touched no local file.
    assert not list((w.project.root / "backups").glob(".pulled-*"))


def test_push_again_and_missing(world: World) -> None:
    w = world
    again = w.ok("push")
    assert {c["status"] for c in again["copies"]} == {"present"}
    second = w.ok("backup", "--format", "sql")
    assert {c["status"] for c in second["offsite"]} == {"pushed"}
    (w.nas / (Path(second["path"]).name + ".age.manifest.json")).unlink()  # as if it never finished
    missing = w.ok("push", "--missing", "--target", "nas")
    statuses = sorted(c["status"] for c in missing["copies"])
    assert statuses == ["present", "pushed"]
    doctor = w.run("doctor", "--only", "targets", "--json")
    checks = {c["name"]: c["status"] for c in json.loads(doctor.stdout)["result"]["checks"]}
    assert doctor.returncode == 0, doctor.stdout
    assert all(status == "ok" for status in checks.values()), checks
    assert {"targets.reachable.box", "targets.newest.offsite", "targets.rpo.nas"} <= set(checks)


def test_restore_from_a_target(world: World) -> None:
    w = world
    before = w.project.checksum()
    w.project.sql("UPDATE auth_user SET first_name = 'changed after the backup'")
    done = w.run("restore", "latest", "--target", "box", "--identity", str(w.identity),
                 "--yes", "--no-safety-backup")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert w.project.checksum() == before
    assert w.vault.alice_reads() == w.vault.alice_secrets
    # The local file of that name was not trusted instead, nor replaced: a scratch copy was.
    assert not list((w.project.root / "backups").glob(".pulled-*"))


def test_recover_on_a_machine_with_no_local_backup(world: World) -> None:
    w = world
    # Logins since the backup changed auth_user.last_login and the sessions: not its data.
    moving = ("public.auth_user", "public.django_session")
    before = {t: v for t, v in w.project.checksum().items() if t not in moving}
    down = w.run("down", "--volumes", "--yes")
    assert down.returncode == 0, down.stderr
    shutil.rmtree(w.project.root / "backups")
    result = w.ok("recover", "--target", "offsite", "--identity", str(w.identity), "--yes")
    assert result["ok"], result
    restored = Path(str(result["restored_from"]))
    assert restored.parent == w.project.root / "backups"  # an ordinary local backup again
    assert {t: v for t, v in w.project.checksum().items() if t not in moving} == before
    assert w.vault.alice_reads() == w.vault.alice_secrets


def test_the_playbook_off_site_commands_run(world: World) -> None:
    """Every off-site command playbook.md shows runs here (test_playbook_e2e leaves them to
    this module): with its placeholders, the identity and the target named offsite."""
    w = world
    shown = [c for c in playbook_commands() if is_offsite(c)]
    assert shown, "playbook.md shows no off-site command"
    fresh = w.root / "safe" / "playbook-identity.txt"
    places = {CHECK_PLACEHOLDER: str(w.root / "offsite-check"), "FILE": str(w.identity)}
    # What `env pull` brings back: the env files, sealed, as every backup pushes them.
    pushed = w.run("env", "push", "--target", "offsite")
    assert pushed.returncode == 0, pushed.stderr
    for argv in shown:
        args = [str(fresh) if a == IDENTITY_PLACEHOLDER and argv[0] == "keys" else
                str(w.identity) if a == IDENTITY_PLACEHOLDER else places.get(a, a)
                for a in argv]  # fmt: skip
        if "recover" in args or "restore" in args:
            args.append("--yes")
        done = w.run(*args)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
    assert fresh.exists()
    assert "age -d -i" in PLAYBOOK.read_text()


def test_a_push_never_touches_another_stacks_objects(world: World) -> None:
    """dev and prod (or two machines) on one bucket: a push aborts no multipart upload and
    removes no object outside its own PROJECT/STACK/ prefix. (moto reports every upload as
    initiated in 2010, so ours looks abandoned and goes: the grace period for young ones
    is tested in test_offsite_s3.py.)"""
    w = world
    w.ok("push", "latest", "--target", "offsite")  # whatever earlier tests made is there now
    client = w.s3.client()
    project = NAMESPACE.split("/")[0]
    theirs = f"prod/{project}/prod/backup_2026-11-29_080000.dump.age"
    ours = f"prod/{NAMESPACE}/backup_2026-11-29_090000.dump.age"
    uploads = {
        key: client.create_multipart_upload(Bucket=w.bucket, Key=key)["UploadId"]
        for key in (theirs, ours)
    }
    crashed = f"prod/{project}/prod/backup_2026-11-29_070000.dump.age"
    client.put_object(Bucket=w.bucket, Key=crashed, Body=b"an upload with no manifest")
    try:
        pushed = w.ok("push", "latest", "--target", "offsite")["copies"][0]
        assert pushed["status"] == "present" and pushed["removed"] == ["(1 unfinished upload)"]
        left = client.list_multipart_uploads(Bucket=w.bucket).get("Uploads", [])
        assert {u["Key"] for u in left} == {theirs}
        assert client.head_object(Bucket=w.bucket, Key=crashed)["ContentLength"] > 0
        names = {b["name"] for b in w.ok("list", "--target", "offsite")["backups"]}
        assert not any(n.startswith("backup_2026-11-29_0") for n in names)
    finally:
        client.abort_multipart_upload(Bucket=w.bucket, Key=theirs, UploadId=uploads[theirs])
        client.delete_object(Bucket=w.bucket, Key=crashed)


# --- failure paths -----------------------------------------------------------------------


def test_target_unreachable_backup_exits_3_and_keeps_the_backup(world: World) -> None:
    w = world
    with S3Server.start(w.root / "moto-stopped") as server:
        down = server.target_settings("vault-down")
        server.client().create_bucket(Bucket="vault-down")
    w.targets["down"] = table("down", type="s3", bucket="vault-down",
                              endpoint_url=down.endpoint_url, region="us-east-1")  # fmt: skip
    w.configure("nas", "down")
    before = w.backups()
    done = w.run("backup")
    w.configure()
    made = [n for n in w.backups() if n not in before and n.endswith(".dump")]
    record(w, before, safe=done.returncode == 3 and len(made) == 1)
    assert done.returncode == 3, done.stderr
    error, hint = two_lines(done.stderr)
    assert "is good here, but copying it off-site failed: target down (s3://vault-down/" in error
    assert "cannot connect" in error
    assert "The local backup stays" in hint
    assert "backup written" in done.stdout and "pushed" in done.stdout  # nas got its copy
    assert (w.nas / (made[0] + ".age.manifest.json")).exists()


def test_sftp_refused_key(world: World) -> None:
    w = world
    other = keygen(w.root / "not-authorized")
    box = w.sftp.target_settings(w.box, key_file=other)
    w.targets["wrongkey"] = table("wrongkey", type="sftp", host=box.host, port=box.port,
                                  user=box.user, path=str(w.box), key_file=str(other),
                                  known_hosts=str(box.known_hosts))  # fmt: skip
    w.configure("wrongkey")
    before = w.backups()
    done = w.run("push", "latest")
    w.configure()
    record(w, before, safe=done.returncode == 3)
    assert done.returncode == 3, done.stderr
    error, _ = two_lines(done.stderr)
    assert f"target wrongkey (sftp://{box.user}@127.0.0.1:{box.port}" in error
    assert f"the server refused key {other} for user" in error


def test_bucket_that_does_not_exist(world: World) -> None:
    w = world
    w.targets["nobucket"] = table("nobucket", type="s3", bucket="vault-no-such-bucket",
                                  endpoint_url=w.s3.endpoint, region="us-east-1")  # fmt: skip
    w.configure("nobucket")
    before = w.backups()
    done = w.run("push", "latest", "--json")
    w.configure()
    record(w, before, safe=done.returncode == 3)
    document = json.loads(done.stdout)
    contract.validate(document)
    assert done.returncode == 3 and document["error"]["code"] == "offsite_failed"
    assert document["result"]["copies"][0]["error"]["code"] == "target_not_found"
    assert "bucket vault-no-such-bucket does not exist" in document["error"]["message"]


@pytest.fixture(scope="module")
def big(world: World) -> Path:
    """A large backup (96 MiB) beside the real ones' folder, for uploads long enough to
    cut: its manifest describes it, which is all a push reads."""
    folder = world.root / "big-backups"
    path = write_backup_file(folder, "backup_2026-11-29_010000.dump", os.urandom(96 * MiB))
    manifest = path.with_name(path.name + ".json")
    doc = json.loads(manifest.read_text())
    doc["project"] = NAMESPACE.split("/")[0]  # this project's: a push sends only its own
    manifest.write_text(json.dumps(doc))
    return path


def wait_until(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"never saw {what}")


def spawn(w: World, *args: str, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, **AWS_ENV, "RECOVERCTL_PROJECT_NAME": w.project.name,
            "RECOVERCTL_CONFIG": str(w.project.root / "recoverctl-config.toml"), **env}  # fmt: skip
    full.pop("RECOVERCTL_PROJECT_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "recoverctl", *args],
        cwd=w.project.root, env=full, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_sftp_server_killed_mid_upload(world: World, big: Path) -> None:
    w = world
    server = SftpServer.start(w.root / "sshd-killed")
    configured = server.root / "vault"
    folder = configured / NAMESPACE
    t = server.target_settings(configured)
    w.targets["killed"] = table("killed", type="sftp", host=t.host, port=t.port, user=t.user,
                                path=str(configured), key_file=str(t.key_file),
                                known_hosts=str(t.known_hosts))  # fmt: skip
    w.configure("killed")
    before = w.backups()
    partial = folder / (big.name + ".age.partial")
    try:
        proc = spawn(w, "push", str(big))
        wait_until(lambda: partial.exists() and partial.stat().st_size > 8 * MiB, "8 MiB sent")
        server.kill()
        _, err = proc.communicate(timeout=120)
        left = sorted(os.listdir(folder)) if folder.exists() else []
        server.launch()
        listing = w.ok("list", "--target", "killed")
        complete = [b for b in listing["backups"] if b["complete"]]
        final = [n for n in left if not n.endswith(".partial")]
        record(w, before, safe=proc.returncode == 3, misleading=len(final) + len(complete))
        assert proc.returncode == 3, err
        error, _ = two_lines(err)
        assert "target killed" in error and "the connection was lost while writing" in error
        # What a cut connection leaves: at most the .partial, never the final name.
        assert left in ([], [big.name + ".age.partial"])
        assert all(not b["complete"] for b in listing["backups"])
        # The next push removes it and completes.
        again = w.ok("push", str(big))
        assert again["copies"][0]["status"] == "pushed"
        assert sorted(os.listdir(folder)) == [
            big.name + ".age",
            big.name + ".age.manifest.json",
            big.name + ".json.age",
        ]
    finally:
        w.configure()
        server.stop()


def test_s3_server_killed_mid_upload(world: World, big: Path) -> None:
    w = world
    server = S3Server.start(w.root / "moto-killed")
    server.client().create_bucket(Bucket="vault-killed")
    w.targets["cut"] = table("cut", type="s3", bucket="vault-killed",
                             endpoint_url=server.endpoint, region="us-east-1")  # fmt: skip
    w.configure("cut")
    before = w.backups()
    client = server.client()

    def parts_sent() -> bool:
        uploads = client.list_multipart_uploads(Bucket="vault-killed").get("Uploads", [])
        return any(
            client.list_parts(Bucket="vault-killed", Key=u["Key"], UploadId=u["UploadId"]).get(
                "Parts"
            )
            for u in uploads
        )

    try:
        proc = spawn(w, "push", str(big))
        wait_until(parts_sent, "a part uploaded")
        server.kill()
        _, err = proc.communicate(timeout=180)
        record(w, before, safe=proc.returncode == 3)
        assert proc.returncode == 3, err
        error, _ = two_lines(err)
        assert "target cut (s3://vault-killed/" in error
        assert "connection was lost" in error or "cannot connect" in error
    finally:
        w.configure()
        server.stop()


def test_full_disk_on_a_folder_target(world: World, big: Path) -> None:
    w = world
    small = w.root / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)],
                             capture_output=True, check=False)  # fmt: skip
    assert mounted.returncode == 0, (
        f"e2e runs as root: it mounts a small tmpfs ({mounted.stderr!r})"
    )
    w.targets["full"] = table("full", type="dir", path=str(small))
    w.configure("full")
    before = w.backups()
    try:
        done = w.run("push", str(big))
        left = [f for _, _, files in os.walk(small) for f in files]
    finally:
        w.configure()
        subprocess.run(["umount", str(small)], check=True)
    record(w, before, safe=done.returncode == 3 and left == [], misleading=len(left))
    assert done.returncode == 3, done.stderr
    error, _ = two_lines(done.stderr)
    assert "target full" in error and "no space left while writing" in error
    assert left == []


def test_a_flipped_byte_on_the_target_is_refused(world: World) -> None:
    w = world
    local = w.project.root / "backups" / w.newest_on("nas")
    data = w.nas / (local.name + ".age")
    original = data.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    data.write_bytes(bytes(flipped))
    out = w.root / "flipped"
    before = w.backups()
    try:
        pull = w.run("pull", local.name, "--target", "nas", "--identity", str(w.identity),
                     "--output-dir", str(out))  # fmt: skip
        verify = w.run("verify", local.name, "--target", "nas")
        restore = w.run("restore", local.name, "--target", "nas", "--identity",
                        str(w.identity), "--yes")  # fmt: skip
        kept = sorted(os.listdir(out)) if out.exists() else []
    finally:
        data.write_bytes(original)
    record(w, before, safe=pull.returncode == 1 and not kept, misleading=len(kept))
    record(w, before, safe=verify.returncode == 1)
    record(w, before, safe=restore.returncode == 1)
    assert pull.returncode == 1 and kept == []
    error, hint = two_lines(pull.stderr)
    assert "is damaged" in error and "Nothing was kept" in hint
    assert verify.returncode == 1 and "failed verification: data" in verify.stderr
    assert "damaged on the target" in verify.stdout
    assert restore.returncode == 1 and "is damaged" in restore.stderr
    assert not list((w.project.root / "backups").glob(".pulled-*"))


def test_a_manifest_with_no_data(world: World) -> None:
    w = world
    local = w.project.root / "backups" / w.newest_on("box")
    (w.box / (local.name + ".age")).unlink()
    before = w.backups()
    listing = w.ok("list", "--target", "box")
    row = next(b for b in listing["backups"] if b["name"] == local.name)
    assert row["complete"] is False and row["problems"] == [f"{local.name}.age is missing"]
    pull = w.run("pull", local.name, "--target", "box", "--identity", str(w.identity),
                 "--output-dir", str(w.root / "nodata"))  # fmt: skip
    verify = w.run("verify", local.name, "--target", "box", "--json")
    record(w, before, safe=pull.returncode == 1 and not (w.root / "nodata" / local.name).exists())
    record(w, before, safe=verify.returncode == 1)
    assert pull.returncode == 1
    error, _ = two_lines(pull.stderr)
    assert "is incomplete" in error and "is missing" in error
    assert json.loads(verify.stdout)["error"]["code"] == "object_corrupt"
    # The next push replaces it whole.
    fixed = w.ok("push", "latest", "--target", "box")
    assert fixed["copies"][0]["status"] == "pushed"
    assert w.ok("verify", "latest", "--target", "box")["ok"]


def test_the_wrong_identity(world: World) -> None:
    w = world
    other = w.root / "safe" / "other.txt"
    seal.new_identity(other)
    out = w.root / "wrong"
    before = w.backups()
    done = w.run("pull", "latest", "--target", "offsite", "--identity", str(other),
                 "--output-dir", str(out))  # fmt: skip
    kept = sorted(os.listdir(out)) if out.exists() else []
    record(w, before, safe=done.returncode == 1 and not kept, misleading=len(kept))
    assert done.returncode == 1
    error, _ = two_lines(done.stderr)
    assert "encrypted to other recipients" in error
    assert "AGE-SECRET-KEY" not in done.stderr + done.stdout


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_signal_during_push(world: World, big: Path, sig: signal.Signals) -> None:
    w = world
    folder = w.root / f"sig-push-{sig.name}"
    folder.mkdir()
    w.targets["sig"] = table("sig", type="dir", path=str(folder))
    w.configure("sig")
    before = w.backups()
    try:
        proc = spawn(w, "push", str(big), RECOVERCTL_FAILPOINT="push.uploading")
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "failpoint push.uploading reached" in line, line
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        w.configure()
    left = sorted(f for _, _, files in os.walk(folder) for f in files)
    complete = [n for n in left if n.endswith(".manifest.json") or n.endswith(".partial")]
    record(w, before, safe=proc.returncode == 128 + sig, misleading=len(complete))
    assert proc.returncode == 128 + sig, err
    error, hint = two_lines(err)
    assert f"Push of {big.name} to target sig interrupted" in error
    assert "push --missing" in hint
    assert complete == []


@pytest.mark.parametrize("sig", SIGNALS, ids=["SIGINT", "SIGTERM"])
def test_signal_during_pull(world: World, sig: signal.Signals) -> None:
    w = world
    out = w.root / f"sig-pull-{sig.name}"
    before = w.backups()
    proc = spawn(w, "pull", "latest", "--target", "box", "--identity", str(w.identity),
                 "--output-dir", str(out), RECOVERCTL_FAILPOINT="pull.downloading")  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "failpoint pull.downloading reached" in line, line
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    kept = sorted(os.listdir(out)) if out.exists() else []
    record(w, before, safe=proc.returncode == 128 + sig and not kept, misleading=len(kept))
    assert proc.returncode == 128 + sig, err
    error, _ = two_lines(err)
    assert "interrupted: nothing was kept" in error
    assert kept == []
