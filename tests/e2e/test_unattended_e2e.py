"""Unattended operation on the real stack: the schedule's own command line, run exactly as
the timer (and cron) would run it, performs routines that back up, verify, prune and
report; targets with no working push fail with exit 3 and prune nothing; `up --backup`
backs up before it recreates anything."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.cli import contract
from tests.e2e.conftest import Project, make_project, tear_down
from tests.unit.test_monitor import Recorder
from tests.unit.test_schedule import _systemd_split

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("un"), "rctl-e2e-un", docker_client)
    project.force_clean()
    project.write_env(".env")
    up = project.run("up")
    assert up.returncode == 0, up.stderr
    yield project
    tear_down(project)


@pytest.fixture(scope="module")
def server() -> Iterator[Recorder]:
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


def envelope(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document = json.loads(done.stdout)
    contract.validate(document)
    assert document["exit_code"] == done.returncode
    return dict(document)


def unit_lines(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "=")]


def run_as_the_timer(service: str) -> subprocess.CompletedProcess[str]:
    """The service's ExecStart argv, in its WorkingDirectory, with only its Environment=
    (and what systemd itself sets), no terminal: what systemd runs when the timer fires."""
    argv = _systemd_split(unit_lines(service, "ExecStart")[0])
    env = {"LANG": "C.UTF-8"}
    for assignment in unit_lines(service, "Environment"):
        name, _, value = _systemd_split(assignment)[0].partition("=")
        env[name] = value
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    workdir = unit_lines(service, "WorkingDirectory")[0].replace("%%", "%")
    assert Path(argv[0]).is_absolute() and Path(workdir).is_absolute()
    return subprocess.run(
        argv, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip


def run_as_cron(cron_file: str) -> subprocess.CompletedProcess[str]:
    """The cron.d entry's command, through /bin/sh with cron's own environment."""
    entry = next(x for x in cron_file.splitlines() if x and not x.startswith("#"))
    command = entry.split(None, 6)[6].replace("\\%", "%")
    env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": "/root", "LOGNAME": "root"}
    return subprocess.run(
        ["/bin/sh", "-c", command], env=env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip


def backups(project: Project) -> list[str]:
    return sorted(
        (n for n in project.backups() if n.endswith(".dump")), reverse=True
    )


def states(project: Project) -> dict[str, str]:
    listed = envelope(project.run("list", "--json"))["result"]["backups"]
    return {b["name"]: b["verification"] for b in listed}


def test_the_scheduled_command_runs_routines(
    stack: Project, server: Recorder, tmp_path: Path
) -> None:
    project = stack
    prom = tmp_path / "recoverctl.prom"
    (project.root / "recoverctl-config.toml").write_text(
        '[recoverctl]\ndeep_every = "1d"\n'
        "[retention]\nkeep_last = 1\n"
        f'[monitoring]\nhealthchecks_url = "{server.url}/hc/uuid"\n'
        f'prometheus_textfile = "{prom}"\n'
    )
    installed = envelope(project.run("schedule", "install", "--every", "1h", "--print", "--json"))
    units = installed["result"]["units"]
    name = installed["result"]["name"]
    assert name == "recoverctl-rctl-e2e-un-dev"
    service = units[f"{name}.service"]
    assert "Persistent=true" in units[f"{name}.timer"]
    assert "RECOVERCTL_PROJECT_NAME=rctl-e2e-un" in service

    # 1: the timer's run. No deep verification yet: it is due, and runs.
    first = run_as_the_timer(service)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "routine ok" in first.stdout
    one = backups(project)
    assert len(one) == 1 and states(project)[one[0]] == "deep ok"
    assert [p.split("?")[0] for p in server.paths()] == ["/hc/uuid/start", "/hc/uuid"]
    metrics = prom.read_text()
    assert 'recoverctl_routine_last_exit_status{project="rctl-e2e-un",stack="dev"} 0' in metrics
    assert "recoverctl_verify_deep_last_success_timestamp_seconds" in metrics

    # 2 and 3: cron's runs. Deep is not due: quick. keep_last = 1 keeps the newest and the
    # newest deep-verified; the third run deletes the second backup, dump, manifest, record.
    for _ in range(2):
        done = run_as_cron(units[f"cron.d/{name}"])
        assert done.returncode == 0, done.stdout + done.stderr
    three = backups(project)
    assert len(three) == 2 and three[1] == one[0]
    found = states(project)
    assert found[three[0]] == "quick ok" and found[one[0]] == "deep ok"
    assert not [n for n in project.backups() if n.startswith(three[0][:-5]) and n not in (
        three[0], f"{three[0]}.json", f"{three[0]}.verify.json")]  # fmt: skip
    status = envelope(project.run("schedule", "status", "--json"))["result"]
    assert status["last_routine"]["ok"] is True


def test_targets_without_a_working_push_fail_with_3_and_prune_nothing(
    stack: Project, tmp_path: Path
) -> None:
    project = stack
    nas = tmp_path / "nas"
    nas.mkdir()
    # A target and no recipients: a push refuses to write in clear, or this recoverctl has
    # no push yet; either way the backup stays, exit 3, and nothing is pruned.
    (project.root / "recoverctl-config.toml").write_text(
        f'[retention]\nkeep_last = 1\n[targets.nas]\ntype = "dir"\npath = "{nas}"\n'
    )
    before = backups(project)
    done = project.run("routine", "--json")
    document = envelope(done)
    assert done.returncode == 3, done.stderr
    assert document["error"]["code"] == "offsite_failed"
    steps = {s["name"]: s["status"] for s in document["result"]["steps"]}
    assert steps["backup"] == "ok" and steps["push"] == "failed" and steps["prune"] == "skipped"
    after = backups(project)
    assert set(before) < set(after) and len(after) == len(before) + 1


def test_up_backs_up_before_it_recreates(stack: Project) -> None:
    project = stack
    (project.root / "recoverctl-config.toml").write_text("")
    before = set(backups(project))
    document = envelope(project.run("up", "--backup", "--no-build", "--json"))
    assert document["ok"], document
    taken = Path(document["result"]["backup"])
    assert taken.name not in before and taken.exists()
    assert states(project)[taken.name] == "quick ok"
    skipped = envelope(project.run("up", "--no-build", "--json"))
    assert skipped["result"]["backup"] is None  # dev: opt-in
    assert os.path.isdir(project.root / "backups")
