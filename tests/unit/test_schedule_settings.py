"""[retention], [monitoring] and deep_every in the settings file and the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from recoverctl.core.retention import Policy
from recoverctl.errors import ConfigError
from recoverctl.settings import Settings, resolve_settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "docker-compose.dev.yml").write_text("name: x\n")
    return tmp_path


def _resolve(project: Path, toml: str, **env: str) -> Settings:
    config = project / "config.toml"
    config.write_text(toml)
    return resolve_settings(environ={"RECOVERCTL_CONFIG": str(config), **env}, cwd=project)


def test_defaults_are_no_policy_no_monitoring_and_a_daily_deep_check(project: Path) -> None:
    s = resolve_settings(environ={}, cwd=project)
    assert s.retention.policy().empty
    assert s.monitoring.healthchecks_url is None and s.monitoring.notify == ()
    assert s.monitoring.notify_on == ("fail",)
    assert s.deep_every == timedelta(hours=24)


def test_the_issue_s_names_are_read(project: Path) -> None:
    s = _resolve(
        project,
        "[recoverctl]\ndeep_every = \"12h\"\n"
        "[retention]\nkeep_last = 3\nkeep_daily = 7\nkeep_weekly = 4\nkeep_monthly = 6\n"
        "[monitoring]\nhealthchecks_url = \"https://hc-ping.com/0a1b/\"\n"
        "notify = [\"ntfys://vault-alerts\", \"mailto://ops@example.com\"]\n"
        "notify_on = [\"fail\", \"success\"]\n"
        "prometheus_textfile = \"/var/lib/node_exporter/textfile/recoverctl.prom\"\n",
    )
    assert s.retention.policy() == Policy(last=3, daily=7, weekly=4, monthly=6)
    m = s.monitoring
    assert m.healthchecks_url == "https://hc-ping.com/0a1b"
    assert m.notify_on == ("fail", "success")
    assert m.prometheus_textfile == Path("/var/lib/node_exporter/textfile/recoverctl.prom")
    assert s.deep_every == timedelta(hours=12)


def test_deep_every_from_the_environment(project: Path) -> None:
    s = resolve_settings(environ={"RECOVERCTL_DEEP_EVERY": "3d"}, cwd=project)
    assert s.deep_every == timedelta(days=3)


def test_every_error_at_once_and_no_url_echoed(project: Path) -> None:
    secret = "https://user:hunter2@hooks.example.com/t0k3n"
    with pytest.raises(ConfigError) as caught:
        _resolve(
            project,
            "[recoverctl]\ndeep_every = \"often\"\n"
            "[retention]\nkeep_daily = -1\nkeep_forever = 1\n"
            f"[monitoring]\nhealthchecks_url = \"ftp://x\"\nnotify = [\"{secret}\", \"t0k3n-only\"]\n"
            "notify_on = [\"always\"]\nprometheus_textfile = \"/tmp/metrics.txt\"\n",
        )
    text = caught.value.message
    assert "RECOVERCTL_DEEP_EVERY" not in text and "often" not in text  # set in the file
    for expected in (
        "config.toml deep_every: must be a duration",
        "[retention] keep_daily",
        "[retention] keep_forever",
        "[monitoring] healthchecks_url",
        "[monitoring] notify: ",
        "entry 2 is not an apprise URL",
        "[monitoring] notify_on",
        "[monitoring] prometheus_textfile: must end in .prom",
    ):
        assert expected in text, text
    assert "hunter2" not in text and "t0k3n" not in text and "ftp://x" not in text


def test_an_unknown_table_is_still_refused(project: Path) -> None:
    with pytest.raises(ConfigError, match="retension"):
        _resolve(project, "[retension]\nkeep_daily = 7\n")
