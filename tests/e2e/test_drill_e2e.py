"""recoverctl drill against the real engine: the seeded vault's backup comes back in
`<project>-drill` with its secrets, while the live app keeps answering and its data (a
canary row written after the backup) stays as it was; then the drill stack is gone, down to
its volume, network and built image, whatever ended the drill: success, SIGTERM, Ctrl-C in
the middle of the restore, the drill's database killed under it, a damaged backup. And the
off-site copy alone, pulled from a folder target, brought back the same way."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.cli import contract
from tests.e2e.conftest import Project, make_project, tear_down, up_seeded
from tests.e2e.vaultclient import Vault
from tests.keywriter import make_keyfile

pytestmark = pytest.mark.e2e

NAME = "rctl-e2e-rd"
DRILL = f"{NAME}-drill"
PASSPHRASE = "kept apart from the key file"


@dataclass
class Live:
    project: Project
    drill: Project  # the drill's compose project, to look for what it left
    vault: Vault
    key_file: Path
    backup: Path
    canary: str

    def snapshot(self) -> tuple[dict[str, str], dict[str, str]]:
        """The live data (every table hashed) and the live containers (name -> id)."""
        containers = {
            str(c.name): str(c.id)
            for c in self.project.client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={NAME}"}
            )
        }
        return self.project.checksum(), containers

    def untouched(self, before: tuple[dict[str, str], dict[str, str]]) -> None:
        assert self.snapshot() == before
        assert self.project.sql("SELECT v FROM drill_canary").strip() == self.canary

    def nothing_left(self) -> None:
        left = self.drill.leftovers()
        images = self.drill.client.images.list(
            filters={"label": f"com.docker.compose.project={DRILL}"}
        )
        assert left == {"containers": [], "networks": [], "volumes": []}, left
        assert images == [], images

    def records(self) -> list[dict[str, Any]]:
        folder = self.project.root / "backups" / "drills"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("DRILL-*.json"))]

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        full = {**os.environ, "RECOVERCTL_PROJECT_NAME": NAME,
                "RECOVERCTL_CONFIG": str(self.project.root / "recoverctl-config.toml"), **env}  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-m", "recoverctl", *args],
            cwd=self.project.root, env=full, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("drill")
    project = make_project(root / "project", NAME, docker_client)
    drill = Project(root=project.root, name=DRILL, client=docker_client)
    drill.force_clean()
    vault = up_seeded(project)
    key_file = root / "safe" / "alice.zkkey.json"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(json.dumps(make_keyfile(vault.alice_key, PASSPHRASE, iterations=100_000)))
    key_file.chmod(0o600)
    made = project.run("backup", "--json")
    assert made.returncode == 0, made.stderr
    backup = Path(json.loads(made.stdout)["result"]["path"])
    # Written after the backup: a drill that restored into the live database would lose it.
    canary = secrets.token_hex(8)
    project.sql(f"CREATE TABLE drill_canary (v text); INSERT INTO drill_canary VALUES ('{canary}')")
    yield Live(project, drill, vault, key_file, backup, canary)
    tear_down(project)
    drill.force_clean()


class Poller:
    """GETs the live app's /healthz every quarter second while the drill runs."""

    def __init__(self, port: int):
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.answers: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as resp:
                    self.answers.append(resp.status)
            except urllib.error.HTTPError as exc:
                self.answers.append(exc.code)
            except OSError:
                self.answers.append(0)
            self._stop.wait(0.25)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def test_a_drill_brings_the_vault_back_beside_the_live_one(live: Live) -> None:
    before = live.snapshot()
    with Poller(live.project.http_port()) as poller:
        done = live.project.run(
            "drill", "--key-file", str(live.key_file), "--passphrase-stdin", "--json",
            input=PASSPHRASE + "\n",
        )  # fmt: skip
    document = json.loads(done.stdout)
    contract.validate(document)
    assert done.returncode == 0 and document["ok"], (done.stderr, document)
    result = document["result"]
    assert (result["project"], result["drill_project"]) == (NAME, DRILL)
    assert result["backup"] == live.backup.name and result["source"] == "local"
    checks = {c["name"]: c for c in result["checks"]}
    for name in ("rows", "db.migrations", "app.admin", "app.key_check", "key.secrets"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["db.not_empty"]["status"] == "ok"  # its users came back
    assert "opened 3 of 3 sampled secrets of alice" in checks["key.secrets"]["evidence"]
    assert PASSPHRASE not in done.stdout + done.stderr
    # Timed: the recovery (start to serving the data) within the whole, each step named.
    assert 0 < result["recovery_seconds"] < result["seconds"]
    steps = [s["step"] for s in result["steps"]]
    assert steps[1] == f"starting the drill stack {DRILL}"
    assert any(s.startswith("restore: swapping") for s in steps)
    assert steps[-1] == f"removing the drill stack {DRILL}"
    # The live stack served throughout and was never touched; nothing of the drill is left.
    assert len(poller.answers) >= 5 and set(poller.answers) == {200}, poller.answers
    live.untouched(before)
    live.nothing_left()
    assert live.vault.alice_reads() == live.vault.alice_secrets
    # The record, private, beside the backups; list and doctor read it.
    record = Path(result["record"])
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    assert json.loads(record.read_text())["result"] == "passed"
    listed = json.loads(live.project.run("list", "--json").stdout)["result"]["last_drill"]
    assert listed["result"] == "passed" and listed["backup"] == live.backup.name
    doctor = live.project.run("doctor", "--only", "backups.drill", "--json")
    row = json.loads(doctor.stdout)["result"]["checks"][0]
    assert row["name"] == "backups.drill" and row["status"] == "ok", row


@pytest.mark.parametrize(
    ("point", "sig"),
    [("drill.up", signal.SIGTERM), ("restore.before-swap", signal.SIGINT)],
    ids=["SIGTERM-stack-up", "SIGINT-mid-restore"],
)
def test_interrupted_drills_leave_nothing(live: Live, point: str, sig: signal.Signals) -> None:
    before = live.snapshot()
    proc = live.spawn("drill", RECOVERCTL_FAILPOINT=point)
    _wait_for(proc, f"failpoint {point} reached")
    assert live.drill.leftovers()["containers"]  # the drill stack was up
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + sig, err
    assert "Drill interrupted while" in err and f"the drill stack {DRILL} was removed" in err
    assert "Traceback" not in err
    live.nothing_left()
    live.untouched(before)
    assert live.records()[-1]["result"] == "interrupted"


def test_the_drill_database_killed_under_the_restore(live: Live) -> None:
    """The engine's calls into the drill's db fail mid-restore: the drill fails, says so,
    and its stack is removed all the same."""
    before = live.snapshot()
    proc = live.spawn("drill", "--json", RECOVERCTL_FAILPOINT="restore.before-swap",
                      RECOVERCTL_FAILPOINT_SECONDS="2")  # fmt: skip
    _wait_for(proc, "failpoint restore.before-swap reached")
    live.drill.container("db").kill()
    out, err = proc.communicate(timeout=180)
    document = json.loads(out)
    contract.validate(document)
    assert proc.returncode == 1 and not document["ok"], err
    assert document["error"]["message"].startswith("The drill failed while restore: swapping")
    assert f"The drill stack {DRILL} was removed." in document["error"]["message"]
    assert document["result"]["result"] == "failed"
    assert document["result"]["recovery_seconds"] is None
    live.nothing_left()
    live.untouched(before)


def test_a_drill_of_the_offsite_copy(live: Live) -> None:
    """--target: the copy a folder target holds, sealed with age, is pulled into the drill's
    private folder and brought back; nothing of it stays, locally or in the engine."""
    from recoverctl.adapters import seal

    identity = live.key_file.parent / "identity.txt"
    recipient = seal.new_identity(identity)
    nas = live.project.root.parent / "nas"
    nas.mkdir(mode=0o700)
    config = live.project.root / "recoverctl-config.toml"
    config.write_text(
        f'[encryption]\nrecipients = ["{recipient}"]\n\n[targets.nas]\ntype = "dir"\n'
        f'path = "{nas}"\n'
    )
    backups = live.project.root / "backups"
    try:
        pushed = live.project.run("push", "latest", "--target", "nas")
        assert pushed.returncode == 0, pushed.stderr
        files = sorted(p.name for p in backups.iterdir() if p.is_file())
        done = live.project.run("drill", "--target", "nas", "--identity", str(identity), "--json")
    finally:
        config.write_text("")
    document = json.loads(done.stdout)
    contract.validate(document)
    assert done.returncode == 0 and document["ok"], (done.stderr, document)
    result = document["result"]
    assert result["source"] == "target nas" and result["backup"] == live.backup.name
    assert result["steps"][0]["step"] == "fetching the backup (target nas: latest)"
    assert sorted(p.name for p in backups.iterdir() if p.is_file()) == files
    assert [p.name for p in (backups / "drills").iterdir() if p.is_dir()] == []
    live.nothing_left()


def test_a_damaged_backup_fails_the_drill(live: Live) -> None:
    backups = live.project.root / "backups"
    damaged = backups / "backup_2026-01-01_000000.dump"
    data = bytearray(live.backup.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    manifest = json.loads((backups / (live.backup.name + ".json")).read_text())
    (backups / (damaged.name + ".json")).write_text(json.dumps({**manifest, "file": damaged.name}))
    try:
        done = live.project.run("drill", "--from", str(damaged), "--json")
    finally:
        for path in backups.glob(damaged.name + "*"):
            path.unlink()
    document = json.loads(done.stdout)
    assert done.returncode == 1 and document["error"]["code"] == "backup_corrupt", done.stderr
    assert "sha256" in document["error"]["message"]
    live.nothing_left()


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float = 180) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if text in line:
            return
    proc.kill()
    raise AssertionError(f"never saw {text!r}; stderr so far:\n{seen}")
