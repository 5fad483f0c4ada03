"""The foundation's promise: up brings the real stack to healthy, down --volumes leaves nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import Project, make_project

pytestmark = pytest.mark.e2e


def test_up_brings_the_dev_stack_to_healthy(dev_project: Project) -> None:
    result = dev_project.run("up")
    assert result.returncode == 0, result.stderr
    assert f"{dev_project.name} (dev)" in result.stdout
    assert result.stdout.count("healthy") >= 2
    assert "ready in" in result.stdout


def test_ps_shows_both_services_running_and_healthy(dev_project: Project) -> None:
    result = dev_project.run("ps", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)["result"]
    assert status["ready"] is True
    rows = {s["service"]: s for s in status["services"]}
    assert set(rows) == {"backend", "db"}
    for row in rows.values():
        assert (row["state"], row["health"]) == ("running", "healthy")
    assert rows["db"]["ports"] == []  # the database is never published


def test_vault_answers_healthz_and_admin(dev_project: Project) -> None:
    code, body = dev_project.get("/healthz")
    assert code == 200, body
    assert json.loads(body)["status"] == "ok"
    code, body = dev_project.get("/admin/login/")
    assert code == 200
    assert "csrfmiddlewaretoken" in body


def test_logs_of_one_service(dev_project: Project) -> None:
    result = dev_project.run("logs", "db", "--tail", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 0 < len(lines) <= 5


def test_logs_of_all_services_are_prefixed(dev_project: Project) -> None:
    result = dev_project.run("logs", "--tail", "2")
    assert result.returncode == 0, result.stderr
    prefixes = {line.split("|")[0].strip() for line in result.stdout.splitlines()}
    assert prefixes == {"backend", "db"}


def test_restart_one_service_comes_back_healthy(dev_project: Project) -> None:
    result = dev_project.run("restart", "backend", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["result"]["ready"] is True


def test_down_volumes_without_confirmation_erases_nothing(dev_project: Project) -> None:
    result = dev_project.run("down", "--volumes", input="")
    assert result.returncode == 2
    assert "No confirmation given; nothing was erased." in result.stderr
    left = dev_project.leftovers()
    assert len(left["containers"]) == 2 and len(left["volumes"]) == 1


def test_down_keeps_the_volume_and_up_again_finds_the_data(dev_project: Project) -> None:
    result = dev_project.run("down")
    assert result.returncode == 0, result.stderr
    left = dev_project.leftovers()
    assert left["containers"] == [] and len(left["volumes"]) == 1
    result = dev_project.run("up", "--no-build")
    assert result.returncode == 0, result.stderr


def test_down_volumes_yes_keeps_a_safety_copy_and_leaves_nothing_else(
    dev_project: Project,
) -> None:
    assert not (dev_project.root / "backups").exists()
    result = dev_project.run("down", "--volumes", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)["result"]
    safety = Path(done["safety_backup"])
    # The copy is this stack's newest backup now, checked before anything was erased.
    assert done["newest_backup"] == str(safety) and safety.parent == dev_project.root / "backups"
    record = json.loads(safety.with_name(safety.name + ".verify.json").read_text())
    assert record["results"][-1]["ok"] is True
    assert dev_project.leftovers() == {"containers": [], "networks": [], "volumes": []}


@pytest.fixture
def prod_project(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Project]:
    project = make_project(tmp_path, "rctl-e2e-prod", docker_client)
    project.force_clean()
    yield project
    project.run("down", "--volumes", "--yes")
    project.force_clean()


def test_prod_with_a_placeholder_secret_fails_fast_with_the_cause(prod_project: Project) -> None:
    prod_project.write_env(".env.production", DJANGO_SECRET_KEY="change-me-django-secret-key")
    result = prod_project.run("up", "--prod", RECOVERCTL_UP_TIMEOUT="240")
    assert result.returncode == 1
    assert "error: Service backend" in result.stderr
    assert "hint: Read its logs (recoverctl logs backend)" in result.stderr
    # The backend's own refusal is shown, so the person knows what to fix.
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "change-me-django-secret-key" not in result.stderr


def test_missing_variable_in_env_file_is_named(prod_project: Project) -> None:
    env = prod_project.write_env(".env.production")
    env.write_text(
        "".join(
            line for line in env.read_text().splitlines(True) if "POSTGRES_PASSWORD" not in line
        )
    )
    result = prod_project.run("up", "--prod", "--no-build")
    assert result.returncode == 1
    assert "set POSTGRES_PASSWORD in .env.production" in result.stderr
    assert "error: docker compose up (rctl-e2e-prod) failed" in result.stderr
