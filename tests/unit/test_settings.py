from datetime import timedelta
from pathlib import Path

import pytest

from recoverctl.errors import ConfigError
from recoverctl.settings import resolve_settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "docker-compose.dev.yml").write_text("name: x\n")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    return tmp_path


def test_found_from_a_subfolder_dev_by_default(project: Path) -> None:
    s = resolve_settings(environ={}, cwd=project / "sub" / "deeper")
    assert s.project_dir == project
    assert s.stack == "dev"
    assert s.compose_file == project / "docker-compose.dev.yml"
    assert s.env_file == project / ".env"
    assert s.backup_dir == project / "backups"


def test_prod_selects_the_prod_files(project: Path) -> None:
    s = resolve_settings(prod=True, environ={}, cwd=project)
    assert (s.compose_rel, s.env_rel) == ("docker-compose.yml", ".env.production")


def test_environment_overrides_relative_to_the_project(project: Path, tmp_path: Path) -> None:
    env = {
        "RECOVERCTL_PROJECT_DIR": str(project),
        "RECOVERCTL_BACKUP_DIR": "elsewhere",
        "RECOVERCTL_PROJECT_NAME": "e2e-1",
        "RECOVERCTL_UP_TIMEOUT": "12",
    }
    s = resolve_settings(environ=env, cwd=Path("/"))
    assert s.backup_dir == project / "elsewhere"
    assert (s.project_name, s.up_timeout) == ("e2e-1", timedelta(seconds=12))


def test_every_invalid_variable_is_reported_at_once(project: Path) -> None:
    env = {
        "RECOVERCTL_PROJECT_NAME": "Not Valid",
        "RECOVERCTL_UP_TIMEOUT": "-1",
        "RECOVERCTL_RPO_HOURS": "soon",
    }
    with pytest.raises(ConfigError) as info:
        resolve_settings(environ=env, cwd=project)
    msg = info.value.message
    for var in ("RECOVERCTL_PROJECT_NAME", "RECOVERCTL_UP_TIMEOUT", "RECOVERCTL_RPO_HOURS"):
        assert var in msg
    assert info.value.exit_code == 2


def test_no_project_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings(environ={}, cwd=tmp_path)
    assert "No vault project here" in info.value.message
    assert info.value.exit_code == 2


def test_missing_explicit_project_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_settings(project_dir=tmp_path / "nope", environ={}, cwd=tmp_path)
    assert "does not exist" in info.value.message


def test_settings_file_sets_the_key_location(project: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[recoverctl]\nkey_file = "/safe/alice.zkkey.json"\nrpo_hours = 12\n')
    s = resolve_settings(environ={"RECOVERCTL_CONFIG": str(config)}, cwd=project)
    assert (s.key_file, s.rpo) == (Path("/safe/alice.zkkey.json"), timedelta(hours=12))
    # The environment wins over the file.
    s = resolve_settings(
        environ={"RECOVERCTL_CONFIG": str(config), "RECOVERCTL_RPO_HOURS": "6"}, cwd=project
    )
    assert s.rpo == timedelta(hours=6)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[recoverctl\n", "is unreadable"),
        ('[recoverctl]\npassword = "x"\n', "unknown keys password"),
        ('recoverctl = "x"\n', "must be a table"),
    ],
)
def test_bad_settings_file(project: Path, tmp_path: Path, text: str, fragment: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as info:
        resolve_settings(environ={"RECOVERCTL_CONFIG": str(config)}, cwd=project)
    assert fragment in info.value.message
