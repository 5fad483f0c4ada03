"""[encryption] and [targets.NAME] in the settings file: parsed, checked, all errors at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoverctl.adapters.targets import open_target
from recoverctl.adapters.targets.dir import DirTarget
from recoverctl.adapters.targets.s3 import S3Target
from recoverctl.adapters.targets.sftp import SftpTarget
from recoverctl.errors import ConfigError, ErrorCode, RecoverctlError
from recoverctl.settings import (
    DirTargetSettings,
    S3TargetSettings,
    Settings,
    SftpTargetSettings,
    resolve_settings,
)

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

ISSUE_EXAMPLE = f"""
[encryption]
recipients = ["{RECIPIENT}"]             # public keys only; or recipients_file = "..."

[targets.nas]
type = "dir"
path = "/mnt/nas/vault-backups"

[targets.offsite]
type = "s3"                          # any S3-compatible service
bucket = "vault-backups"
prefix = "prod/"
endpoint_url = "https://s3.example.com"   # omit for AWS
region = "eu-west-1"

[targets.box]
type = "sftp"
host = "backup.example.com"
port = 22
user = "vault"
path = "backups/vault"
key_file = "~/.ssh/id_ed25519"
known_hosts = "~/.ssh/known_hosts"   # an unknown or changed host key is refused
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    root.mkdir()
    (root / "docker-compose.dev.yml").write_text("name: x\n")
    return root


def resolve(project: Path, toml: str, **env: str) -> Settings:
    config = project.parent / "config.toml"
    config.write_text(toml)
    return resolve_settings(
        environ={"RECOVERCTL_CONFIG": str(config), "HOME": "/home/ops", **env}, cwd=project
    )


def errors_of(project: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(project, toml)
    assert info.value.exit_code == 2
    return info.value.message


def test_the_issues_example_parses(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")  # ~ expands from the process's HOME
    s = resolve(project, ISSUE_EXAMPLE)
    assert s.encryption.recipients == (RECIPIENT,)
    assert s.encryption.configured
    nas, offsite, box = s.targets["nas"], s.targets["offsite"], s.targets["box"]
    assert nas == DirTargetSettings(type="dir", path=Path("/mnt/nas/vault-backups"))
    assert isinstance(offsite, S3TargetSettings)
    assert (offsite.bucket, offsite.prefix, offsite.region) == (
        "vault-backups",
        "prod/",
        "eu-west-1",
    )
    assert offsite.profile is None
    assert isinstance(box, SftpTargetSettings)
    assert box.key_file == Path("/home/ops/.ssh/id_ed25519")
    assert box.known_hosts == Path("/home/ops/.ssh/known_hosts")
    assert (box.host, box.port, box.user, box.path) == (
        "backup.example.com",
        22,
        "vault",
        "backups/vault",
    )
    assert {t.encryption for t in s.targets.values()} == {"age"}  # on unless opted out


def test_defaults_and_the_opt_out(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/ops")
    s = resolve(
        project,
        """
[targets.box]
type = "sftp"
host = "h"
user = "u"
path = "/srv/b"
key_file = "/keys/k"
encryption = "none"
""",
    )
    box = s.targets["box"]
    assert isinstance(box, SftpTargetSettings)
    assert (box.port, box.known_hosts, box.encryption) == (
        22,
        Path("/home/ops/.ssh/known_hosts"),
        "none",
    )
    assert not s.encryption.configured


def test_no_settings_file_means_no_targets(project: Path) -> None:
    s = resolve_settings(environ={"RECOVERCTL_CONFIG": str(project / "none.toml")}, cwd=project)
    assert s.targets == {} and not s.encryption.configured


def test_recipients_file(project: Path, tmp_path: Path) -> None:
    s = resolve(project, f'[encryption]\nrecipients_file = "{tmp_path}/r.txt"\n')
    assert s.encryption.recipients_file == tmp_path / "r.txt"


def test_every_error_at_once_naming_the_key(project: Path) -> None:
    message = errors_of(
        project,
        """
[recoverctl]
rpo_hours = -1

[encryption]
recipients = ["age1tooshort"]

[targets.nas]
type = "dir"
path = "relative/folder"

[targets.offsite]
type = "s3"
bucket = "Not_A_Bucket"
endpoint_url = "ftp://example.com"
colour = "red"

[targets.box]
type = "sftp"
host = "h"
user = "u"
path = "p"
port = 0

[targets.tape]
type = "tape"
""",
    )
    config = project.parent / "config.toml"
    # Each is named where it was set (the file and its key), and no value is repeated.
    assert "RECOVERCTL_RPO_HOURS" not in message and "relative/folder" not in message
    for expected in (
        f"{config} rpo_hours: Input should be greater than 0",
        "[encryption] recipients.0: not an age public key",
        f"{config} [targets.nas] path: must be an absolute path (or start with ~/)",
        "[targets.offsite] bucket: not a bucket name",
        "[targets.offsite] endpoint_url: must be an http:// or https:// URL",
        "[targets.offsite] colour: Extra inputs are not permitted",
        "[targets.box] port:",
        "[targets.box] key_file: Field required",
        '[targets.tape] type: must be "dir", "s3" or "sftp"',
    ):
        assert expected in message, (expected, message)


def test_secrets_are_never_echoed(project: Path) -> None:
    message = errors_of(
        project,
        """
[encryption]
recipients = ["AGE-SECRET-KEY-1QQQQSOMETHINGPRIVATE"]

[targets.offsite]
type = "s3"
bucket = "b-1"
endpoint_url = "https://key:supersecret@s3.example.com"
""",
    )
    assert "[encryption] recipients.0: this is a private key" in message
    assert "[targets.offsite] endpoint_url: must not carry credentials" in message
    assert "SOMETHINGPRIVATE" not in message and "supersecret" not in message


def test_recipients_or_recipients_file(project: Path) -> None:
    message = errors_of(
        project, f'[encryption]\nrecipients = ["{RECIPIENT}"]\nrecipients_file = "/r.txt"\n'
    )
    assert "[encryption]: set recipients or recipients_file, not both" in message


def test_target_names(project: Path) -> None:
    message = errors_of(project, '[targets."Off Site"]\ntype = "dir"\npath = "/x"\n')
    assert "target names must be lowercase" in message and "Off Site" in message


def test_unknown_tables_and_keys_reported_together(project: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve(project, '[recoverctl]\npasword = "x"\n[target.nas]\ntype = "dir"\n')
    assert "unknown keys pasword" in info.value.message
    assert "unknown tables or keys target at the top level" in info.value.message
    assert "[targets.NAME]" in (info.value.hint or "")


def test_the_factory_builds_each_kind_without_connecting(project: Path) -> None:
    s = resolve(project, ISSUE_EXAMPLE)
    nas = open_target("nas", s.targets["nas"])
    offsite = open_target("offsite", s.targets["offsite"])
    box = open_target("box", s.targets["box"])
    assert isinstance(nas, DirTarget) and nas.location == "/mnt/nas/vault-backups"
    assert isinstance(offsite, S3Target)
    assert offsite.location == "s3://vault-backups/prod/ at https://s3.example.com"
    assert isinstance(box, SftpTarget)
    assert box.location == "sftp://vault@backup.example.com/~/backups/vault"
    assert repr(box) == f"<SftpTarget target box ({box.location})>"


def test_missing_profile_is_a_config_error() -> None:
    t = S3Target("offsite", bucket="b-1", profile="no-such-profile-here")
    with pytest.raises(RecoverctlError) as info:
        _ = t.client
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "no-such-profile-here" in info.value.message


def test_parts_in_flight_reach_the_target_within_bounds(project: Path) -> None:
    s3 = '[targets.offsite]\ntype = "s3"\nbucket = "b-1"\n'
    for extra, expected in (("", 1), ("parts_in_flight = 2\n", 2)):
        target = open_target("offsite", resolve(project, s3 + extra).targets["offsite"])
        assert isinstance(target, S3Target) and target.concurrency == expected
    for wrong in (0, 9):
        message = errors_of(project, s3 + f"parts_in_flight = {wrong}\n")
        assert "[targets.offsite] parts_in_flight:" in message, message
