"""Every reader of outside bytes returns a value or raises the project's own error: the
oracle of each property below. Inputs: valid samples mutated (tests/fuzz.py) and random
bytes. RECOVERCTL_FUZZ_EXAMPLES=2000 runs them longer."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recoverctl.adapters.files import load_compose
from recoverctl.adapters.targets.base import check_name
from recoverctl.core import dumpcheck, naming
from recoverctl.core.duration import parse_duration
from recoverctl.core.envcopy import EnvManifest
from recoverctl.core.envgen import InvalidHost, check_host
from recoverctl.core.keyfile import KeyFileError, parse_keyfile
from recoverctl.core.offsite import RemoteManifest, classify, remote_manifest_names
from recoverctl.core.outside import read_json
from recoverctl.errors import RecoverctlError
from recoverctl.services import catalog
from recoverctl.settings import resolve_settings
from tests.fuzz import FUZZ, json_mutated, mutated
from tests.unit.fakes import PROJECT, plain_dump

REPO = Path(__file__).resolve().parents[2]
SHA = "a" * 64
NAME = "backup_2026-05-01_030000.dump"
MANIFEST: dict[str, Any] = {
    "file": NAME, "sha256": SHA, "size": 10, "format": "custom",
    "database": "vault", "project": PROJECT, "stack": "dev", "server_version": "15.18",
    "pg_dump_version": "15.18", "tables": {"public.t": 3}, "migrations": {"vault": "0001"},
    "started_at": "2026-05-01T03:00:00+00:00", "duration_seconds": 0.5,
    "recoverctl_version": "0.1.0",
}  # fmt: skip
RECORD = {"file": NAME, "results": [
    {"kind": "deep", "ok": True, "at": "2026-05-01T03:00:00+00:00", "sha256": SHA}]}  # fmt: skip
DRILL = {
    "result": "passed", "project": PROJECT, "drill_project": PROJECT + "-drill", "stack": "dev",
    "source": "local", "backup": NAME, "started_at": "2026-05-01T03:00:00+00:00",
    "finished_at": "2026-05-01T03:01:00+00:00",
}  # fmt: skip
REMOTE = {
    "backup": NAME, "format": "custom", "created_at": "2026-05-01T03:00:00+00:00",
    "uploaded_at": "2026-05-01T03:05:00+00:00", "plain_size": 10, "encryption": "none",
    "data": {"name": NAME, "size": 10, "sha256": SHA},
    "manifest": {"name": NAME + ".json", "size": 5, "sha256": SHA},
    "recoverctl_version": "0.1.0", "project": PROJECT, "stack": "dev",
}  # fmt: skip
ENV_MANIFEST = {
    "project": PROJECT, "pushed_at": "2026-05-01T03:00:00+00:00", "recipients": ["age1x"],
    "files": [{"name": ".env", "role": "env", "object": "20260501T030000000000Z.env.age",
               "size": 5, "sha256": SHA}],
    "recoverctl_version": "0.1.0",
}  # fmt: skip


def _backups(tmp_path: Path) -> Path:
    folder = tmp_path / "backups"
    folder.mkdir(exist_ok=True)
    return folder


def test_the_samples_are_valid(tmp_path: Path) -> None:
    """The mutations start from documents each reader accepts."""
    path = _backups(tmp_path) / NAME
    path.write_bytes(b"0123456789")
    catalog.manifest_path(path).write_text(json.dumps(MANIFEST))
    catalog.verify_path(path).write_text(json.dumps(RECORD))
    assert catalog.load_manifest(path, strict=True) is not None
    assert catalog.load_record(path) is not None
    assert RemoteManifest.from_bytes(json.dumps(REMOTE).encode()).backup == NAME
    assert EnvManifest.from_bytes(json.dumps(ENV_MANIFEST).encode()).project == PROJECT


@FUZZ
@given(json_mutated(MANIFEST))
def test_a_manifest_is_read_or_refused_as_damaged(tmp_path: Path, raw: bytes) -> None:
    path = _backups(tmp_path) / NAME
    path.write_bytes(b"0123456789")
    catalog.manifest_path(path).write_bytes(raw)
    try:
        m = catalog.load_manifest(path, strict=True)
    except catalog.ManifestError as exc:
        assert "\n" not in exc.message
        return
    if m is not None:  # what it read can be used: dated, comparable, in range
        assert m.started_at.tzinfo is not None
        assert m.started_at < datetime.now(UTC).replace(year=9999)


@FUZZ
@given(json_mutated(RECORD), json_mutated(DRILL))
def test_records_are_read_or_skipped(tmp_path: Path, record: bytes, drill: bytes) -> None:
    folder = _backups(tmp_path)
    path = folder / NAME
    catalog.verify_path(path).write_bytes(record)
    found = catalog.load_record(path)
    assert found is None or all(r.at.tzinfo is not None for r in found.results)
    (folder / "drills").mkdir(exist_ok=True)
    (folder / "drills" / "DRILL-2026-05-01_030000.json").write_bytes(drill)
    settings = resolve_settings(project_dir=REPO, environ={"RECOVERCTL_BACKUP_DIR": str(folder),
                                                           "RECOVERCTL_CONFIG": "/nonexistent"})  # fmt: skip
    for d in catalog.drill_records(settings):
        assert d.started_at.tzinfo is not None


@FUZZ
@given(json_mutated(REMOTE))
def test_a_remote_manifest_is_read_or_damaged(raw: bytes) -> None:
    try:
        m = RemoteManifest.from_bytes(raw)
    except RecoverctlError as exc:
        assert exc.code == "manifest_damaged"
        return
    assert m.created_at.tzinfo is not None and m.uploaded_at.tzinfo is not None


@FUZZ
@given(json_mutated(ENV_MANIFEST))
def test_an_env_manifest_is_read_or_damaged(raw: bytes) -> None:
    try:
        m = EnvManifest.from_bytes(raw)
    except RecoverctlError as exc:
        assert exc.code == "manifest_damaged"
        return
    assert m.pushed_at.tzinfo is not None


@FUZZ
@given(mutated(json.dumps({"a": [1, {"b": "c"}]}).encode()))
def test_json_is_read_within_bounds_or_refused(raw: bytes) -> None:
    try:
        read_json(raw)
    except ValueError as exc:
        assert str(exc)


def test_json_bounds() -> None:
    for bad, why in ((b"[" * 100 + b"]" * 100, "nested"), (b"1" * 4301, "too large"),
                     (b"\xff", "UTF-8")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            read_json(bad)


@FUZZ
@given(st.one_of(st.text(max_size=80), st.sampled_from([
    "backup_2026-02-30_120000.dump", "backup_\u0662\u0660\u0662\u0666-05-01_030000.dump",
    "backup_2026-05-01_030000.dump\n", "backup_2026-05-01_030000 (copy).dump",
    "backup_0001-01-01_000000.sql", "backup_2026-05-01_030000_99999999999.dump",
])))  # fmt: skip
def test_backup_names(name: str) -> None:
    when = naming.parse_backup_name(name)
    assert (when is not None) == naming.is_backup_name(name)
    naming.sort_key(name)
    if when is not None:
        assert name.isascii() and "\n" not in name


@FUZZ
@given(st.one_of(st.text(max_size=40), st.sampled_from([
    "99999999999w", "99999999999999999999", "1e9d", "nan", "inf", "-1h", "\u0661h", "1h\n", "",
])))  # fmt: skip
def test_durations(text: str) -> None:
    try:
        d = parse_duration(text)
    except ValueError as exc:
        assert str(exc).startswith("must be")  # the value is never repeated
        return
    assert d.total_seconds() > 0


@FUZZ
@given(
    st.one_of(
        st.text(max_size=80),
        st.sampled_from(["\u0661\u0662\u0667.\u0660.\u0660.\u0661", "vault.example.com\n"]),
    )
)
def test_hosts(text: str) -> None:
    try:
        host = check_host(text)
    except InvalidHost:
        return
    assert host.isascii() and "\n" not in host


@FUZZ
@given(st.text(max_size=300))
def test_object_names(name: str) -> None:
    try:
        assert check_name(name) == name and name.isascii() and "/" not in name
    except RecoverctlError as exc:
        assert exc.code == "usage"


@FUZZ
@given(st.lists(st.text(max_size=60), max_size=8))
def test_a_listing_of_odd_names_is_classified(names: list[str]) -> None:
    from recoverctl.core.offsite import ObjectInfo

    objects = [ObjectInfo(n, 1, datetime(2026, 5, 1, tzinfo=UTC)) for n in names]
    for name in remote_manifest_names(objects):
        check_name(name)  # each one fetched is a legal name
    listing = classify(objects, {})
    assert len(listing.foreign) + sum(len(b.objects) for b in listing.backups) == len(objects)


@FUZZ
@given(mutated(plain_dump({"public.t": ["1", "2"]})), mutated(plain_dump({})))
def test_a_dump_head_and_tail(head: bytes, tail: bytes) -> None:
    try:
        info = dumpcheck.inspect(head, tail)
    except dumpcheck.NotADump as exc:
        assert str(exc) and exc.hint
        return
    assert info.format in ("custom", "sql")


@FUZZ
@given(mutated((REPO / "tests" / "vectors" / "zkkey-v1.json").read_bytes()))
def test_a_key_export(raw: bytes) -> None:
    with contextlib.suppress(KeyFileError):
        parse_keyfile(raw.decode("utf-8", "replace"))


@FUZZ
@given(mutated((REPO / "docker-compose.dev.yml").read_bytes()))
def test_a_compose_file(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "docker-compose.dev.yml").write_bytes(raw)
    settings = resolve_settings(project_dir=tmp_path, environ={"RECOVERCTL_CONFIG": "/nonexistent"})
    try:
        load_compose(settings)
    except RecoverctlError as exc:
        assert exc.code in ("compose_invalid", "service_missing", "project_not_found"), exc.code


SETTINGS_FILE = b"""[recoverctl]
rpo = "24h"
deep_every = "1d"
identity_file = "/root/id.age"

[targets.nas]
type = "dir"
path = "/mnt/nas"

[retention]
keep_daily = 7
"""


@FUZZ
@given(mutated(SETTINGS_FILE))
def test_a_settings_file(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "docker-compose.dev.yml").write_text("services: {}\n")
    config = tmp_path / "config.toml"
    config.write_bytes(raw)
    try:
        resolve_settings(project_dir=tmp_path, environ={"RECOVERCTL_CONFIG": str(config)})
    except RecoverctlError as exc:
        assert exc.code == "config_invalid", exc.code


def test_a_settings_file_nested_a_thousand_deep(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.dev.yml").write_text("services: {}\n")
    config = tmp_path / "config.toml"
    config.write_text("[recoverctl]\nx = " + "[" * 1000 + "]" * 1000 + "\n")
    with pytest.raises(RecoverctlError) as caught:
        resolve_settings(project_dir=tmp_path, environ={"RECOVERCTL_CONFIG": str(config)})
    assert caught.value.code == "config_invalid"


def test_a_secret_in_a_setting_is_never_repeated(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.dev.yml").write_text("services: {}\n")
    key = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3Q0L7Z"
    config = tmp_path / "config.toml"
    config.write_text(f'[recoverctl]\nidentity_file = "{key}"\n')
    with pytest.raises(RecoverctlError) as caught:
        resolve_settings(project_dir=tmp_path, environ={"RECOVERCTL_CONFIG": str(config)})
    assert (
        key not in caught.value.message and "RECOVERCTL_IDENTITY_FILE" not in caught.value.message
    )
    assert f"{config} identity_file" in caught.value.message
    with pytest.raises(RecoverctlError) as caught:
        resolve_settings(
            project_dir=tmp_path,
            environ={"RECOVERCTL_CONFIG": "/nonexistent", "RECOVERCTL_IDENTITY_FILE": key},
        )
    assert key not in caught.value.message and "RECOVERCTL_IDENTITY_FILE" in caught.value.message


def test_a_project_dir_name_too_long(tmp_path: Path) -> None:
    with pytest.raises(RecoverctlError) as caught:
        resolve_settings(project_dir=tmp_path / ("x" * 300), environ={})
    assert caught.value.code == "project_not_found"
