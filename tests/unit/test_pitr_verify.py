"""pgBackRest's verify, read: it exits 0 whatever it finds, so its printed lines are the
verdict (core/pitr.parse_verify)."""

from __future__ import annotations

from recoverctl.core import pitr

WAL = "15-1/0000000100000000/00000001000000000000000C-" + "3f" * 20 + ".lz4"
BEGIN = "P00   INFO: verify command begin 2.45: --repo=1 --stanza=vault --verbose\n"
END = "P00   INFO: verify command end: completed successfully\n"
GOOD = (
    BEGIN + "P00   INFO: stanza: vault\n"
    "            status: ok\n"
    "              archiveId: 15-1, total WAL checked: 12, total valid WAL: 12\n"
    "                missing: 0, checksum invalid: 0, size invalid: 0, other: 0\n"
    "              backup: 20261202-184835F, status: valid, total files checked: 1335, "
    "total valid files: 1335\n" + END
)


def test_a_clean_repository_passes_with_its_counts() -> None:
    found = pitr.parse_verify(GOOD)
    assert found.ok and found.problems == () and found.cause is None
    assert found.summary.startswith("archiveId: 15-1, total WAL checked: 12, total valid WAL: 12")
    assert "backup: 20261202-184835F, status: valid" in found.summary


def test_a_bad_checksum_is_named() -> None:
    out = (
        BEGIN
        + f"P01   INFO: invalid checksum '{WAL}'\n"
        + GOOD.replace("status: ok", "status: error")
    )
    found = pitr.parse_verify(out)
    assert not found.ok and found.problems == (f"invalid checksum '{WAL}'",)
    assert found.cause == f"invalid checksum '{WAL}'."


def test_a_file_it_cannot_read_is_named_with_pgbackrests_words() -> None:
    out = BEGIN + f"P01   INFO: invalid result {WAL}: [29] FormatError: lz4 error\n" + END
    found = pitr.parse_verify(out)
    assert not found.ok
    assert found.problems == (f"unreadable '{WAL}' ([29] FormatError: lz4 error)",)


def test_a_missing_wal_segment_is_a_warning_not_damage() -> None:
    out = BEGIN + f"P01   WARN: file missing '{WAL}'\n" + GOOD
    assert pitr.parse_verify(out).ok
    backup_file = "20261202-184835F/pg_data/base/1/1259.lz4"
    found = pitr.parse_verify(BEGIN + f"P01   INFO: file missing '{backup_file}'\n" + END)
    assert not found.ok and found.problems == (f"file missing '{backup_file}'",)


def test_an_error_status_without_a_file_still_fails() -> None:
    found = pitr.parse_verify(GOOD.replace("status: ok", "status: error"))
    assert not found.ok and found.problems == ()
    assert found.cause is not None and "total WAL checked: 12" in found.cause


def test_many_problems_are_cut_to_three() -> None:
    lines = "".join(f"P01   INFO: invalid size 'f{i}'\n" for i in range(5))
    found = pitr.parse_verify(BEGIN + lines + END)
    assert len(found.problems) == 5
    assert found.cause is not None and found.cause.endswith("(and 2 more).")
    assert "f3" not in found.cause


def test_verify_prints_its_findings_for_one_repository() -> None:
    argv = pitr.verify(2)
    assert argv[0] == "pgbackrest" and argv[-1] == "verify"
    assert "--repo=2" in argv and "--log-level-console=info" in argv and "--verbose" in argv
