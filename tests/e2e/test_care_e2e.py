"""doctor's stack, key and backup checks, and keys check, against the real vault: each
check shown passing, then failing on a bad fixture, then passing again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.conftest import Project, make_project, tear_down, up_seeded
from tests.e2e.vaultclient import Vault, spki
from tests.keywriter import make_keyfile, seal_envelope

pytestmark = pytest.mark.e2e

PASSPHRASE = "kept apart from the key file"


class Care:
    def __init__(self, project: Project, vault: Vault, key_file: Path):
        self.project = project
        self.vault = vault
        self.key_file = key_file

    def doctor(self, *args: str, rpo: str | None = None) -> tuple[int, dict[str, dict[str, str]]]:
        if rpo is None:
            result = self.project.run("doctor", "--json", *args)
        else:
            result = self.project.run("doctor", "--json", *args, RECOVERCTL_RPO_HOURS=rpo)
        data = json.loads(result.stdout)["result"]
        return result.returncode, {c["name"]: c for c in data["checks"]}

    def configure(self, key: Path | None) -> None:
        config = self.project.root / "recoverctl-config.toml"
        config.write_text(f'[recoverctl]\nkey_file = "{key}"\n' if key else "")


@pytest.fixture(scope="module")
def care(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Care]:
    root = tmp_path_factory.mktemp("care")
    project = make_project(root / "project", "rctl-e2e-care", docker_client)
    vault = up_seeded(project, git=True)
    key_file = root / "safe" / "alice.zkkey.json"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(json.dumps(make_keyfile(vault.alice_key, PASSPHRASE, iterations=100_000)))
    key_file.chmod(0o600)
    care = Care(project, vault, key_file)
    care.configure(key_file)
    for command in [("backup",), ("verify", "latest", "--deep")]:
        done = project.run(*command)
        assert done.returncode == 0, done.stderr
    yield care
    tear_down(project)


def test_a_healthy_stack_passes_every_check(care: Care) -> None:
    code, checks = care.doctor()
    failed = {n: c for n, c in checks.items() if c["status"] == "fail"}
    assert code == 0 and not failed, failed
    for name in ("engine", "compose.valid", "service.db", "service.backend", "db.answers",
                 "db.not_empty", "db.migrations", "app.admin", "app.key_check",
                 "key.registered", "backups.rpo", "backups.space", "env.running"):  # fmt: skip
        assert checks[name]["status"] == "ok", (name, checks[name])
    assert "alice" in checks["key.registered"]["evidence"]


def test_key_of_another_vault(care: Care, tmp_path: Path) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = tmp_path / "other.zkkey.json"
    other.write_text(json.dumps(make_keyfile(stranger, PASSPHRASE, iterations=100_000)))
    other.chmod(0o600)
    care.configure(other)
    try:
        _, checks = care.doctor("--only", "key")
        assert checks["key.registered"]["status"] == "fail"
        assert "belongs to no vault user" in checks["key.registered"]["evidence"]
        result = care.project.run(
            "keys", "check", str(other), "--passphrase-stdin", input=PASSPHRASE + "\n"
        )
        assert result.returncode == 1
        assert "error: This key belongs to no user of this vault" in result.stderr
    finally:
        care.configure(care.key_file)


def test_keys_check_proves_the_key_reads_the_data(care: Care) -> None:
    result = care.project.run(
        "keys", "check", "--passphrase-stdin", "--json", input=PASSPHRASE + "\n"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)["result"]
    assert (data["user"], data["opened"], data["sampled"], data["secrets_total"]) == (
        "alice",
        3,
        3,
        3,
    )
    assert PASSPHRASE not in result.stdout + result.stderr
    for plaintext in care.vault.alice_secrets.values():
        assert plaintext not in result.stdout + result.stderr
    wrong = care.project.run("keys", "check", "--passphrase-stdin", input="not it\n")
    assert wrong.returncode == 1
    assert "error: wrong passphrase or damaged key file" in wrong.stderr


def test_no_key_configured_while_secrets_exist(care: Care) -> None:
    care.configure(None)
    try:
        code, checks = care.doctor("--only", "key")
        assert code == 1
        assert checks["key.configured"]["status"] == "fail"
        assert "while the vault holds 4 secrets" in checks["key.configured"]["evidence"]
    finally:
        care.configure(care.key_file)


def test_unapplied_migration(care: Care) -> None:
    row = care.project.sql(
        "SELECT id, app, name, applied FROM django_migrations WHERE app = 'sessions' ORDER BY id DESC LIMIT 1"
    )
    care.project.sql(f"DELETE FROM django_migrations WHERE id = {row.split('|')[0]}")
    try:
        _, checks = care.doctor("--only", "stack")
        assert checks["db.migrations"]["status"] == "fail"
    finally:
        mid, app, name, applied = row.strip().split("|")
        care.project.sql(
            f"INSERT INTO django_migrations (id, app, name, applied) VALUES ({mid}, '{app}', '{name}', '{applied}')"
        )
    _, checks = care.doctor("--only", "stack")
    assert checks["db.migrations"]["status"] == "ok"


def test_env_changed_but_containers_not_recreated(care: Care) -> None:
    env = care.project.root / ".env"
    original = env.read_text()
    env.write_text(
        original.replace(
            f"POSTGRES_PASSWORD={care.project.env['POSTGRES_PASSWORD']}",
            "POSTGRES_PASSWORD=edited-later-0123456789",
        )
    )
    try:
        _, checks = care.doctor("--only", "env")
        assert checks["env.running"]["status"] == "fail"
        assert "POSTGRES_PASSWORD (db, backend)" in checks["env.running"]["evidence"]
        assert "edited-later" not in json.dumps(checks)
    finally:
        env.write_text(original)


def test_stale_backups_fail_the_rpo(care: Care) -> None:
    _, checks = care.doctor("--only", "backups", rpo="0.0001")
    assert checks["backups.rpo"]["status"] == "fail"
    assert "allowed" in checks["backups.rpo"]["evidence"]


def test_admin_refused_for_an_unlisted_host(care: Care) -> None:
    env = care.project.root / ".env"
    original = env.read_text()
    env.write_text(
        original.replace(
            "DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1", "DJANGO_ALLOWED_HOSTS=vault.example.org"
        )
    )
    try:
        up = care.project.run("up", "--no-build")
        assert up.returncode == 0, up.stderr
        code, checks = care.doctor("--only", "stack", "--only", "env")
        assert code == 1
        assert checks["app.admin"]["status"] == "fail"
        assert "not an allowed host" in checks["app.admin"]["evidence"]
        assert checks["env.allowed_hosts"]["status"] == "fail"
    finally:
        env.write_text(original)
        assert care.project.run("up", "--no-build").returncode == 0
    _, checks = care.doctor("--only", "stack")
    assert checks["app.admin"]["status"] == "ok"


def test_stopped_backend(care: Care) -> None:
    care.project.container("backend").stop(timeout=30)
    try:
        code, checks = care.doctor("--only", "stack")
        assert code == 1
        assert checks["service.backend"]["status"] == "fail"
        assert checks["service.backend"]["fix"].startswith("recoverctl up")
        assert checks["app.admin"]["status"] == "fail"
        assert checks["db.answers"]["status"] == "ok"  # one failure does not stop the others
    finally:
        care.project.container("backend").start()
        care.project.wait_healthy()


def test_secrets_encrypted_with_another_key(care: Care) -> None:
    """The playbook's "data encrypted with another key": kid says alice, bytes say otherwise."""
    before = care.project.checksum()
    fp = json.loads(
        care.project.run(
            "keys", "check", "--passphrase-stdin", "--json", input=PASSPHRASE + "\n"
        ).stdout
    )["result"]["fingerprint"]
    envelope = seal_envelope(spki(care.vault.bob_key), b"not for alice")
    envelope["kid"] = fp
    care.project.sql(
        f"UPDATE vault_secret SET envelope = '{json.dumps(envelope)}' WHERE name = 'mail'"
    )
    try:
        result = care.project.run("keys", "check", "--passphrase-stdin", input=PASSPHRASE + "\n")
        assert result.returncode == 1
        assert (
            "error: Opened 2 of 3 sampled secrets of alice: the others were encrypted with another key or are damaged."
            in result.stderr
        )
    finally:
        restored = care.project.run("restore", "latest", "--yes", "--no-safety-backup")
        assert restored.returncode == 0, restored.stderr
    assert care.project.checksum() == before
    assert care.vault.alice_reads() == care.vault.alice_secrets


def test_empty_database(care: Care) -> None:
    care.project.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    try:
        code, checks = care.doctor("--only", "stack")
        assert code == 1
        assert checks["db.not_empty"]["status"] == "fail"
        assert checks["db.not_empty"]["fix"].startswith("Restore the newest backup")
    finally:
        restored = care.project.run("restore", "latest", "--yes", "--no-safety-backup")
        assert restored.returncode == 0, restored.stderr
    assert care.vault.alice_reads() == care.vault.alice_secrets
