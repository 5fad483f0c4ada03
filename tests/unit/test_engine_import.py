"""Engine.connect's import of the Docker SDK leaves out its ssh:// transport (and paramiko,
~0.07 s) unless DOCKER_HOST asks for ssh://. Run in a fresh interpreter each: the import is
once per process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = (
    "import sys; from recoverctl.adapters.engine import _skip_ssh_transport; "
    "_skip_ssh_transport(); import docker, docker.api.client; "
    "print('paramiko' in sys.modules, hasattr(docker.transport, 'SSHHTTPAdapter'))"
)


def _probe(docker_host: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    if docker_host is not None:
        env["DOCKER_HOST"] = docker_host
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize("docker_host", [None, "unix:///var/run/docker.sock", "tcp://h:2375"])
def test_no_ssh_transport_for_other_engines(docker_host: str | None) -> None:
    assert _probe(docker_host) == "False False"


def test_ssh_engine_keeps_its_transport() -> None:
    pytest.importorskip("paramiko")
    assert _probe("ssh://user@host") == "True True"
