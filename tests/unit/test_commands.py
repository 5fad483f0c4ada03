from recoverctl.core import commands

T = commands.ComposeTarget(
    cli=("docker", "compose"),
    project="vault-dev",
    compose_file="/p/docker-compose.dev.yml",
    env_file="/p/.env",
    project_dir="/p",
)
BASE = (
    "docker", "compose", "--project-name", "vault-dev", "--project-directory", "/p",
    "--file", "/p/docker-compose.dev.yml", "--env-file", "/p/.env",
)  # fmt: skip


def test_compose_up_builds_by_default() -> None:
    assert commands.compose_up(T, build=True) == (
        *BASE,
        "up",
        "--detach",
        "--build",
        "--remove-orphans",
    )


def test_compose_up_without_build() -> None:
    assert commands.compose_up(T, build=False) == (*BASE, "up", "--detach", "--remove-orphans")


def test_compose_up_of_some_services_removes_no_orphans() -> None:
    # The rest of the stack is not an orphan while only db comes up first.
    assert commands.compose_up(T, build=False, services=("db",)) == (
        *BASE, "up", "--detach", "db",
    )  # fmt: skip


def test_compose_create_starts_nothing() -> None:
    assert commands.compose_create(T, ("db",)) == (*BASE, "create", "db")


def test_compose_down_keeps_volumes_unless_asked() -> None:
    assert commands.compose_down(T, volumes=False) == (*BASE, "down", "--remove-orphans")
    assert commands.compose_down(T, volumes=True) == (
        *BASE,
        "down",
        "--volumes",
        "--remove-orphans",
    )


def test_v1_fallback_cli_is_used_as_is() -> None:
    v1 = commands.ComposeTarget(("docker-compose",), "p", "/c.yml", "/e", "/d")
    assert commands.compose_config_check(v1)[:2] == ("docker-compose", "--project-name")
    assert commands.compose_version(("docker-compose",)) == ("docker-compose", "version", "--short")
