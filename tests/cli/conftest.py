import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the real compose files, with no env file, and an engine that cannot answer."""
    for name in ("docker-compose.yml", "docker-compose.dev.yml", ".env.example"):
        shutil.copy(REPO / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setenv("RECOVERCTL_CONFIG", str(tmp_path / "config.toml"))
    for var in ("RECOVERCTL_PROJECT_DIR", "RECOVERCTL_PROJECT_NAME", "RECOVERCTL_BACKUP_DIR"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
