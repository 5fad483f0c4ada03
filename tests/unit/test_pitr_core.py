"""core/pitr.py: pgBackRest's settings, commands and reports as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recoverctl.core import pitr
from recoverctl.errors import ErrorCode, RecoverctlError

TUNING = pitr.Tuning(
    archive_timeout=timedelta(seconds=30),
    io_timeout=timedelta(seconds=20),
    keep_full=2,
    wal_max_mib=1024,
)


def s3(**over: object) -> pitr.Repo:
    args: dict[str, object] = {
        "bucket": "vault-backups",
        "prefix": "prod/",
        "endpoint_url": "https://s3.example.com:9000",
        "region": "eu-west-1",
        "ca_file": "/etc/ssl/nas-ca.pem",
        "project": "vault-prod",
        "stack": "prod",
    }
    args.update(over)
    return pitr.s3_repo(2, "offsite", **args)  # type: ignore[arg-type]


def test_a_folder_repository_lives_in_the_stacks_namespace_and_is_mounted() -> None:
    repo = pitr.dir_repo(1, "nas", "/mnt/nas/", "vault-prod", "prod")
    assert repo.host_path == "/mnt/nas/vault-prod/prod/pgbackrest"
    assert repo.mount == "/var/lib/pgbackrest-repos/nas"
    assert dict(repo.options) == {"repo1-type": "posix", "repo1-path": repo.mount}


def test_an_s3_repository_names_its_endpoint_port_style_and_ca() -> None:
    repo = s3()
    options = dict(repo.options)
    assert options["repo2-path"] == "/prod/vault-prod/prod/pgbackrest"
    assert options["repo2-s3-endpoint"] == "s3.example.com"
    assert options["repo2-storage-port"] == "9000"
    assert options["repo2-s3-uri-style"] == "path"
    assert options["repo2-storage-ca-file"] == "/etc/pgbackrest-ca/offsite.pem"
    assert repo.location == "s3://vault-backups/prod/vault-prod/prod/pgbackrest"


def test_aws_gets_its_regional_endpoint_and_no_ca() -> None:
    options = dict(s3(endpoint_url=None, ca_file=None, prefix="").options)
    assert options["repo2-s3-endpoint"] == "s3.eu-west-1.amazonaws.com"
    assert options["repo2-path"] == "/vault-prod/prod/pgbackrest"
    assert "repo2-storage-ca-file" not in options and "repo2-s3-uri-style" not in options


def test_plain_http_s3_is_refused_since_pgbackrest_speaks_https_only() -> None:
    with pytest.raises(RecoverctlError) as caught:
        s3(endpoint_url="http://minio:9000")
    assert "HTTPS only" in caught.value.message


def test_the_environment_carries_every_secret_and_the_bounds() -> None:
    repos = [pitr.dir_repo(1, "nas", "/mnt/nas", "p", "dev"), s3()]
    env = pitr.environment(
        repos,
        TUNING,
        pg_user="vault",
        passphrase="p" * 48,
        s3={"offsite": pitr.S3Access("AKIA", "s3cret", "tok")},
    )
    assert env["PGBACKREST_CONFIG"] == "/dev/null"
    assert env["PGBACKREST_PG1_USER"] == "vault"
    assert env["PGBACKREST_REPO1_CIPHER_PASS"] == env["PGBACKREST_REPO2_CIPHER_PASS"] == "p" * 48
    assert env["PGBACKREST_REPO1_CIPHER_TYPE"] == "aes-256-cbc"
    assert env["PGBACKREST_REPO2_S3_KEY"] == "AKIA"
    assert env["PGBACKREST_REPO2_S3_KEY_SECRET"] == "s3cret"
    assert env["PGBACKREST_REPO2_S3_TOKEN"] == "tok"
    assert env["PGBACKREST_ARCHIVE_PUSH_QUEUE_MAX"] == "1024MiB"
    assert env["PGBACKREST_IO_TIMEOUT"] == "20"
    assert env["PGBACKREST_REPO1_RETENTION_FULL"] == "2"


def test_an_s3_repository_without_credentials_is_refused() -> None:
    with pytest.raises(RecoverctlError) as caught:
        pitr.environment([s3()], TUNING, pg_user="vault", passphrase="x" * 48, s3={})
    assert "No S3 credentials" in caught.value.message


def test_the_env_file_refuses_what_compose_would_interpolate_or_cut() -> None:
    assert pitr.env_file_text({"A": "b/c:d"}).endswith("A=b/c:d\n")
    for bad in ("a$b", "a b", "a#b", 'a"b', "a\nb"):
        with pytest.raises(RecoverctlError):
            pitr.env_file_text({"A": bad})


def test_passphrases_are_long_random_and_plain() -> None:
    made = {pitr.new_passphrase() for _ in range(20)}
    assert len(made) == 20
    assert all(len(p) == pitr.PASSPHRASE_LENGTH and p.isalnum() for p in made)


def test_the_override_archives_and_mounts_without_a_secret() -> None:
    repos = [pitr.dir_repo(1, "nas", "/mnt/nas", "p", "dev"), s3()]
    doc = pitr.override(
        "p", repos, env_file="/srv/p/.recoverctl/pitr-p.env", archive_timeout=timedelta(30)
    )
    db = doc["services"]["db"]
    assert "archive_mode=on" in db["command"] and "wal_level=replica" in db["command"]
    assert "archive_command=pgbackrest --stanza=vault archive-push %p" in db["command"]
    assert db["env_file"] == ["/srv/p/.recoverctl/pitr-p.env"]
    targets = {v["target"]: v for v in db["volumes"]}
    assert targets["/var/lib/pgbackrest-repos/nas"]["source"] == "/mnt/nas/p/dev/pgbackrest"
    assert targets["/etc/pgbackrest-ca/offsite.pem"]["read_only"] is True
    assert doc[pitr.OVERRIDE_MARK]["project"] == "p"
    assert json.loads(pitr.override_text(doc)) == doc


def test_archive_timeout_is_whole_seconds_on_the_command_line() -> None:
    assert "archive_timeout=30s" in pitr.server_options(timedelta(seconds=30))


def test_a_restore_starts_with_archiving_off_whatever_the_target() -> None:
    for argv in (pitr.restore(1, "2026-12-02 13:02:00.000000+00"), pitr.restore(2, None)):
        assert "--archive-mode=off" in argv and argv[0] == "pgbackrest"
        assert argv[-1] == "restore"
    timed = pitr.restore(1, "2026-12-02 13:02:00.000000+00")
    assert "--type=time" in timed and "--target-action=promote" in timed
    assert "--type=default" in pitr.restore(2, None)


def test_commands_name_the_stanza_and_repository() -> None:
    assert pitr.backup("diff", 2) == (
        "pgbackrest", "--stanza=vault", "--type=diff", "--repo=2", "backup",
    )  # fmt: skip
    assert pitr.info() == ("pgbackrest", "--stanza=vault", "--output=json", "info")
    assert pitr.verify(1)[-1] == "verify" and pitr.expire(1)[-1] == "expire"


def test_version_is_read_or_refused() -> None:
    assert pitr.parse_version("pgBackRest 2.45\n") == (2, 45)
    assert pitr.supports((2, 45), "posix") and not pitr.supports((2, 45), "sftp")
    assert pitr.supports((2, 55), "sftp")
    with pytest.raises(RecoverctlError) as caught:
        pitr.parse_version("command not found")
    assert caught.value.code == ErrorCode.PITR_FAILED


INFO = [
    {
        "name": "vault",
        "cipher": "aes-256-cbc",
        "status": {"code": 0, "message": "ok"},
        "repo": [
            {"key": 1, "cipher": "aes-256-cbc", "status": {"code": 0, "message": "ok"}},
            {"key": 2, "cipher": "aes-256-cbc", "status": {"code": 1, "message": "missing stanza path"}},
        ],
        "archive": [
            {"database": {"id": 1, "repo-key": 1}, "min": "000000010000000000000001", "max": "000000010000000000000009"},
        ],
        "backup": [
            {"label": "20261201-000000F", "type": "full", "error": False,
             "database": {"id": 1, "repo-key": 1},
             "archive": {"start": "000000010000000000000002", "stop": "000000010000000000000003"},
             "info": {"size": 100, "repository": {"delta": 40, "size": 40}},
             "timestamp": {"start": 1796083200, "stop": 1796083260}},
            {"label": "20261202-000000F_20261202-010000D", "type": "diff", "error": False,
             "database": {"id": 1, "repo-key": 1},
             "archive": {"start": "000000010000000000000007", "stop": "000000010000000000000007"},
             "info": {"size": 100, "repository": {"delta": 4, "size": 4}},
             "timestamp": {"start": 1796173200, "stop": 1796173230}},
        ],
    }
]  # fmt: skip


def test_info_gives_each_repository_its_window_and_backups() -> None:
    info = pitr.parse_info(json.dumps(INFO))
    one, two = info.repos
    assert one.ok and not two.ok and two.message == "missing stanza path"
    assert one.earliest == datetime.fromtimestamp(1796083260, UTC)
    assert one.newest is not None and one.newest.type == "diff"
    full = one.newest_of("full")
    assert full is not None and full.label == "20261201-000000F"
    assert (one.wal_min, one.wal_max) == ("000000010000000000000001", "000000010000000000000009")
    assert two.earliest is None and two.backups == ()


def _backup(label: str, db: int, start: int, wal: int) -> dict[str, object]:
    segment = f"{1:08X}{0:08X}{wal:08X}"
    return {
        "label": label, "type": "full", "error": False, "database": {"id": db, "repo-key": 1},
        "archive": {"start": segment, "stop": segment},
        "info": {"size": 100, "repository": {"delta": 40, "size": 40}},
        "timestamp": {"start": start, "stop": start + 10},
    }  # fmt: skip


def _upgraded(*versions: tuple[int, str]) -> str:
    """A stanza of one repository whose history holds versions: (system id, major) each,
    db ids from 1, one full backup and WAL 1 to 4 each."""
    return json.dumps([{
        "name": "vault", "cipher": "aes-256-cbc", "status": {"code": 0, "message": "ok"},
        "repo": [{"key": 1, "cipher": "aes-256-cbc", "status": {"code": 0, "message": "ok"}}],
        "db": [{"id": i, "repo-key": 1, "system-id": sid, "version": major}
               for i, (sid, major) in enumerate(versions, 1)],
        "archive": [{"database": {"id": i, "repo-key": 1}, "id": f"{major}-{i}",
                     "min": _seg(1, i * 10), "max": _seg(1, i * 10 + 3)}
                    for i, (_, major) in enumerate(versions, 1)],
        "backup": [_backup(f"B{i}", i, 1796083200 + i * 1000, i * 10)
                   for i in range(1, len(versions) + 1)],
    }])  # fmt: skip


def test_after_a_stanza_upgrade_only_the_new_clusters_backups_and_wal_count() -> None:
    (repo,) = pitr.parse_info(_upgraded((7001, "15"), (7002, "17"))).repos
    assert repo.version == "17" and repo.archive_ids == ("17-2",)
    assert [b.label for b in repo.backups] == ["B2"]
    assert (repo.wal_min, repo.wal_max) == (_seg(1, 20), _seg(1, 23))
    assert repo.earliest == datetime.fromtimestamp(1796083200 + 2000 + 10, UTC)


def test_after_a_rollback_the_old_clusters_whole_history_counts_again() -> None:
    # The rollback's stanza-upgrade appends the old cluster again (same system id).
    (repo,) = pitr.parse_info(_upgraded((7001, "15"), (7002, "17"), (7001, "15"))).repos
    assert repo.version == "15" and repo.archive_ids == ("15-1", "15-3")
    assert [b.label for b in repo.backups] == ["B1", "B3"]
    assert (repo.wal_min, repo.wal_max) == (_seg(1, 10), _seg(1, 33))


def test_the_archive_listing_keeps_the_current_clusters_folders_only() -> None:
    listing = {
        f"15-1/0000000100000000/{_seg(1, 5)}-{'ab' * 20}.lz4": {"type": "file"},
        f"17-2/0000000100000000/{_seg(1, 7)}-{'cd' * 20}.lz4": {"type": "file"},
    }
    text = json.dumps(listing)
    assert pitr.parse_archive_ls(text, ("17-2",)) == (_seg(1, 7),)
    assert pitr.parse_archive_ls(text) == (_seg(1, 5), _seg(1, 7))
    assert pitr.stanza_upgrade() == ("pgbackrest", "--stanza=vault", "stanza-upgrade")


@pytest.mark.parametrize("text", ["", "[]", "{}", '[{"name": "vault"}]', "not json"])
def test_info_of_another_shape_is_an_error_not_a_window(text: str) -> None:
    with pytest.raises(RecoverctlError) as caught:
        pitr.parse_info(text)
    assert caught.value.code == ErrorCode.PITR_FAILED


NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
WEEK, DAY = timedelta(days=7), timedelta(days=1)


@pytest.mark.parametrize(
    ("full", "newest", "due"),
    [
        (None, None, "full"),
        (NOW - 8 * DAY, NOW - DAY / 2, "full"),
        (NOW - 2 * DAY, NOW - 2 * DAY, "diff"),
        (NOW - 2 * DAY, NOW - DAY / 2, None),
    ],
)
def test_the_base_backup_due(
    full: datetime | None, newest: datetime | None, due: str | None
) -> None:
    assert pitr.due(full, newest, NOW, WEEK, DAY) == due


def test_no_differentials_when_diff_every_is_unset() -> None:
    assert pitr.due(NOW - 2 * DAY, NOW - 2 * DAY, NOW, WEEK, None) is None


def archiver_row(**over: str) -> str:
    fields = {
        "wal": "000000010000000000000005",
        "at": "2026-12-02T11:59:50.000000Z",
        "failed": "0",
        "fwal": "",
        "fat": "",
        "current": "000000010000000000000006",
        "ready": "0",
        "bytes": "83886080",
        "mode": "on",
        "now": "2026-12-02T12:00:00.000000Z",
    }
    fields.update(over)
    return "\t".join(fields.values()) + "\n"


def test_an_archiver_with_nothing_waiting_has_no_lag() -> None:
    a = pitr.parse_archiver(archiver_row())
    assert a.lag == timedelta(0) and not a.failing and a.pg_wal_bytes == 83886080


def test_a_failing_archiver_lags_since_its_last_success() -> None:
    a = pitr.parse_archiver(
        archiver_row(ready="3", failed="7", fwal="000000010000000000000006",
                     fat="2026-12-02T11:59:58.000000Z")
    )  # fmt: skip
    assert a.failing and a.lag == timedelta(seconds=10) and a.failed_count == 7


def test_a_success_after_a_failure_is_not_failing() -> None:
    a = pitr.parse_archiver(archiver_row(fwal="x", fat="2026-12-02T11:00:00.000000Z"))
    assert not a.failing


def test_an_archiver_row_of_another_shape_is_refused() -> None:
    with pytest.raises(RecoverctlError):
        pitr.parse_archiver("a\tb\n")


def test_pgbackrests_cause_keeps_the_line_an_error_goes_on_in() -> None:
    from recoverctl.services.pitr import pgbackrest_cause

    stderr = (
        "WARN: something\n"
        "ERROR: [055]: unable to load info file '/r/backup.info' or '/r/backup.info.copy':\n"
        "       HostConnectError: unable to connect to 's3.test:443': Connection refused\n"
        "       HINT: has a stanza-create been performed?\n"
    )
    cause = pgbackrest_cause(stderr)
    assert cause is not None and cause.endswith("Connection refused.")
    assert "[055]" not in cause and "HINT" not in cause
    assert pgbackrest_cause("ERROR: [056]: no primary\n") == "no primary."
    assert pgbackrest_cause("all fine\n") is None


# What pgBackRest 2.45 wrote to stderr for a backup signed with a wrong S3 secret (moto
# checking signatures, tests/e2e/test_pitr_s3_e2e.py), one HTTP exchange shortened.
_EXCHANGE = (
    "       *** Path/Query ***:\n"
    "       GET /b/r/backup/vault/backup.info{copy}\n"
    "       *** Request Headers ***:\n"
    + "".join(f"       header-{i}: value\n" for i in range(12))
    + "       *** Response Content ***:\n"
    '       <?xml version="1.0" encoding="utf-8"?>\n'
    "       <Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we "
    "calculated does not match</Message></Error>\n"
)
WRONG_SECRET = (
    "ERROR: [039]: unable to load info file '/r/backup/vault/backup.info' or "
    "'/r/backup/vault/backup.info.copy':\n"
    "       ProtocolError: HTTP request failed with 403 (FORBIDDEN):\n"
    + _EXCHANGE.format(copy="")
    + "       ProtocolError: HTTP request failed with 403 (FORBIDDEN):\n"
    + _EXCHANGE.format(copy=".copy")
    + "       HINT: backup.info cannot be opened and is required to perform a backup.\n"
    "       HINT: has a stanza-create been performed?\n"
)


def test_an_s3_refusal_is_said_with_its_code_from_the_tail_exec_keeps() -> None:
    """stderr's tail loses pgBackRest's ERROR line under the HTTP dumps; the kept first
    error and its next line give the cause, and S3's code says which refusal it is."""
    from recoverctl.adapters.pgexec import _Lines
    from recoverctl.services.pitr import pgbackrest_cause

    lines = _Lines()
    raw = WRONG_SECRET.encode()
    for i in range(0, len(raw), 37):  # frames cut lines anywhere
        lines.add(raw[i : i + 37])
    tail = lines.tail()
    assert len(tail.splitlines()) == 2 + 1 + 20
    assert tail.splitlines()[2] == "…" and tail.endswith("stanza-create been performed?")
    cause = pgbackrest_cause(tail)
    assert cause == (
        "unable to load info file '/r/backup/vault/backup.info' or "
        "'/r/backup/vault/backup.info.copy': ProtocolError: HTTP request failed with 403 "
        "(FORBIDDEN): SignatureDoesNotMatch."
    )
    # A short stderr is kept whole, once.
    short = _Lines()
    short.add(b"ERROR: [056]: no primary\nmore\n")
    assert short.tail() == "ERROR: [056]: no primary\nmore"


# --- gaps in the archive -----------------------------------------------------------------


def _base(label: str, wal_start: str, *, error: bool = False) -> pitr.BaseBackup:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    return pitr.BaseBackup(label, "full", 1, at, at, wal_start, wal_start, 0, 0, error)


def _seg(tl: int, n: int) -> str:
    return f"{tl:08X}{n // 256:08X}{n % 256:08X}"


def test_archive_listing_keeps_segments_and_nothing_else() -> None:
    listing = {
        ".": {"type": "path"},
        "15-1/0000000100000000": {"type": "path"},
        f"15-1/0000000100000000/{_seg(1, 5)}-{'ab' * 20}.lz4": {"type": "file", "size": 9},
        f"15-1/0000000100000000/{_seg(1, 6)}-{'cd' * 20}": {"type": "file"},
        f"15-1/0000000100000000/{_seg(1, 6)}.00000028.backup": {"type": "file"},
        "15-1/00000002.history": {"type": "file"},
        "archive.info": {"type": "file"},
    }
    assert pitr.parse_archive_ls(json.dumps(listing)) == (_seg(1, 5), _seg(1, 6))
    for bad in ("[]", "not json", '"x"'):
        with pytest.raises(RecoverctlError) as info:
            pitr.parse_archive_ls(bad)
        assert info.value.code is ErrorCode.PITR_FAILED
    assert pitr.archive_ls(2) == (
        "pgbackrest", "--stanza=vault", "--repo=2", "--recurse", "--output=json", "repo-ls",
        "archive/vault",
    )  # fmt: skip


def test_gaps_are_the_missing_runs_from_the_oldest_backup_on() -> None:
    whole = [_seg(1, n) for n in range(3, 12)]
    assert pitr.gaps(whole, [_base("F1", _seg(1, 3))]) == ()
    holed = [s for s in whole if s not in (_seg(1, 6), _seg(1, 7))]
    (gap,) = pitr.gaps(holed, [_base("F1", _seg(1, 3))])
    assert (gap.first_missing, gap.last_missing, gap.segments) == (_seg(1, 6), _seg(1, 7), 2)
    assert gap.closed_by is None
    # A base backup whose WAL starts after the gap closes it; a failed one does not.
    backups = [_base("F1", _seg(1, 3)), _base("X", _seg(1, 9), error=True), _base("F2", _seg(1, 8))]
    assert pitr.gaps(holed, backups)[0].closed_by == "F2"
    # Segments before the oldest backup are not the window's; its own first one missing is.
    assert pitr.gaps(whole[2:], [_base("F1", _seg(1, 5))]) == ()
    (lost,) = pitr.gaps(whole[2:], [_base("F1", _seg(1, 4))])
    assert (lost.first_missing, lost.segments) == (_seg(1, 4), 1)
    # Across a log boundary (256 segments of 16 MiB per log), and per timeline: a promoted
    # copy's timeline starts where it was promoted, not at the oldest backup.
    boundary = [_seg(1, 255), _seg(1, 256)]
    assert pitr.gaps(boundary, [_base("F1", _seg(1, 255))]) == ()
    timelines = [*whole, _seg(2, 20), _seg(2, 21)]
    assert pitr.gaps(timelines, [_base("F1", _seg(1, 3))]) == ()
    # Dropped at the end of an outage: missing up to what the server counts archived.
    (tail,) = pitr.gaps(whole, [_base("F1", _seg(1, 3))], through=_seg(1, 13))
    assert (tail.first_missing, tail.last_missing, tail.closed_by) == (_seg(1, 12), _seg(1, 13), None)
    assert pitr.gaps(whole, [_base("F1", _seg(1, 3))], through=_seg(1, 9)) == ()
    assert pitr.gaps(whole, [_base("F1", _seg(1, 3))], through=_seg(2, 40)) == ()  # no such tl
    # 64 MiB segments: 64 per log.
    big = [f"{1:08X}{0:08X}{63:08X}", f"{1:08X}{1:08X}{0:08X}"]
    assert pitr.gaps(big, [], segment_bytes=64 * 2**20) == ()
    assert len(pitr.gaps(big, [])) == 1


def test_the_override_healthcheck_wakes_the_checkpointer_once_per_start() -> None:
    """With archiving on, the db's healthcheck is the tracked one (pg_isready) and, once per
    server start, a reload that wakes the checkpointer; the wake never fails the check."""
    doc = pitr.override("p", [], env_file="e.env", archive_timeout=timedelta(seconds=30))
    test = doc["services"]["db"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    script = test[1]
    assert script.startswith('pg_isready -U "$${POSTGRES_USER}" -d "$${POSTGRES_DB}" || exit 1;')
    assert f'-c "{pitr.WAKE_SQL}"' in script and script.endswith("exit 0")
    assert "postmaster.pid" in script
    # Compose reads `$$` as a `$` for the shell: no `$` is left alone for compose to expand.
    assert "$" not in script.replace("$$", "")


def test_a_repository_of_another_major_than_the_image_is_refused_with_the_way_out() -> None:
    message, hint = pitr.wrong_image("nas", "17", "postgres:15", 15) or ("", "")
    assert message == (
        "Repository nas holds a PostgreSQL 17 cluster; the env file's image postgres:15 "
        "runs 15: nothing was restored."
    )
    assert "POSTGRES_IMAGE to a PostgreSQL 17 image" in hint and "env pull" in hint
    assert pitr.wrong_image("nas", "17", "postgres:17", 17) is None
    assert pitr.wrong_image("nas", "", "postgres:15", 15) is None  # no stanza yet
    assert pitr.wrong_image("nas", "17", "postgres:latest", None) is None


class _VersionOnly:
    """A db whose image answers `pgbackrest version` alone."""

    def __init__(self, answer: str, exit_code: int = 0) -> None:
        self.answer, self.exit_code = answer, exit_code

    def run(self, argv: tuple[str, ...]) -> object:
        from recoverctl.adapters.pgexec import ExecResult

        assert argv == pitr.version(), argv
        return ExecResult(argv, self.exit_code, self.answer.encode(), "", None)


def test_an_image_whose_pgbackrest_cannot_reach_a_repository_is_named() -> None:
    from recoverctl.services import pitr as svc

    sftp = pitr.sftp_repo(1, "box", host="h", port=22, user="u", path="/p", project="v", stack="dev")
    folder = pitr.dir_repo(2, "nas", "/srv/nas", "v", "dev")
    db: Any = _VersionOnly("pgBackRest 2.45\n")
    assert svc.image_ready(db, [folder], "postgres:15") == (2, 45)
    with pytest.raises(RecoverctlError) as caught:
        svc.image_ready(db, [folder, sftp], "recoverctl-test/postgres:15")
    assert caught.value.message == (
        "Target 'box' is an sftp repository, which pgBackRest 2.45 of "
        "recoverctl-test/postgres:15 cannot use (from 2.46)."
    )
    assert caught.value.code == ErrorCode.CONFIG_INVALID
    assert svc.image_ready(_VersionOnly("pgBackRest 2.55.1\n"), [sftp]) == (2, 55)  # type: ignore[arg-type]
    with pytest.raises(RecoverctlError) as missing:
        svc.image_ready(_VersionOnly("", 127), [folder])  # type: ignore[arg-type]
    assert missing.value.message == "The db image has no pgBackRest."


def test_the_data_volume_is_the_named_volume_at_the_data_directory() -> None:
    mounts = [
        {"Destination": "/var/lib/pgbackrest-repos/nas", "Type": "bind", "Source": "/srv/nas"},
        {"Destination": pitr.PGDATA, "Type": "volume", "Name": "vault_db-data"},
    ]
    assert pitr.data_volume({"Mounts": mounts}) == "vault_db-data"
    assert pitr.data_volume({"Mounts": [{"Destination": pitr.PGDATA, "Type": "bind"}]}) is None
    assert pitr.data_volume({"Mounts": None}) is None and pitr.data_volume({}) is None
