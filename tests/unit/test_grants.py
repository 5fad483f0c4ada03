"""core/grants: a dump's privileges, read from a real archive's table of contents and
from plain lines, judged against the server's roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoverctl.core import grants
from recoverctl.core.dumpcheck import NotADump
from recoverctl.core.script import ScriptFilter

# pg_dump 15 of: role reader; role gone; table t; REVOKE USAGE ON SCHEMA public FROM PUBLIC;
# GRANT SELECT ON t TO reader, gone, PUBLIC; schema z; GRANT USAGE ON SCHEMA z TO gone.
ARCHIVE = (Path(__file__).resolve().parents[1] / "vectors" / "acl-archive.bin").read_bytes()


def test_a_real_archives_privileges() -> None:
    assert grants.archive_statements(ARCHIVE) == [
        "REVOKE USAGE ON SCHEMA public FROM PUBLIC;",
        "GRANT USAGE ON SCHEMA z TO gone;",
        "GRANT SELECT ON TABLE public.t TO reader;",
        "GRANT SELECT ON TABLE public.t TO gone;",
        "GRANT SELECT ON TABLE public.t TO PUBLIC;",
    ]


def test_judged_against_the_servers_roles() -> None:
    judged = grants.judge(grants.archive_statements(ARCHIVE), ["vault", "reader"])
    assert judged.skipped == (
        "GRANT USAGE ON SCHEMA z TO gone;",
        "GRANT SELECT ON TABLE public.t TO gone;",
    )
    assert "REVOKE USAGE ON SCHEMA public FROM PUBLIC;" in judged.applied
    assert judged.public == ("GRANT SELECT ON TABLE public.t TO PUBLIC;",)
    own, foreign = judged.notes(foreign=False), judged.notes(foreign=True)
    assert own == tuple(f"skipped, its role does not exist here: {s}" for s in judged.skipped)
    assert (
        foreign[-1]
        == "the file grants access to every role: GRANT SELECT ON TABLE public.t TO PUBLIC;"
    )


@pytest.mark.parametrize("cut", [10, 60, 200, len(ARCHIVE) // 3])
def test_a_cut_table_of_contents_is_refused(cut: int) -> None:
    with pytest.raises(NotADump):
        grants.archive_statements(ARCHIVE[:cut])


@pytest.mark.parametrize(
    ("statement", "role"),
    [
        ("GRANT SELECT ON TABLE public.t TO reader;", "reader"),
        ('GRANT ALL ON SCHEMA z TO "Odd ""Name""" WITH GRANT OPTION;', 'Odd "Name"'),
        ("REVOKE ALL ON TABLE public.t FROM PUBLIC;", "public"),
        ("GRANT reader TO vault;", "vault"),
        ("SELECT 1;", None),
    ],
)
def test_grantee(statement: str, role: str | None) -> None:
    assert grants.grantee(statement) == role


def test_a_plain_dumps_grants_to_missing_roles_are_filtered() -> None:
    dump = (
        b"CREATE TABLE public.t (id int);\n"
        b"COPY public.t (id) FROM stdin;\nGRANT SELECT ON TABLE public.t TO gone;\n\\.\n"
        b"GRANT SELECT ON TABLE public.t TO gone;\nGRANT SELECT ON TABLE public.t TO reader;\n"
    )
    assert grants.plain_statements(dump)[-2:] == [
        "GRANT SELECT ON TABLE public.t TO gone;",
        "GRANT SELECT ON TABLE public.t TO reader;",
    ]
    f = ScriptFilter(roles=frozenset({"vault", "reader"}))
    out = b"".join(f(iter([dump])))
    # The COPY row that reads like a grant is data: it stays; the statement goes.
    assert out.count(b"TO gone;") == 1 and b"TO reader;" in out
    assert f.notes.skipped_grants == 1


def test_default_privileges_and_a_grant_by_another_role() -> None:
    statements = [
        "ALTER DEFAULT PRIVILEGES FOR ROLE vault IN SCHEMA public GRANT SELECT ON TABLES TO reader;",
        "GRANT SELECT ON TABLE public.t TO reader;",
    ]
    judged = grants.judge(statements, ["vault", "reader"])
    assert judged.applied == ("GRANT SELECT ON TABLE public.t TO reader;",)
    assert judged.defaults == (statements[0],)
    assert judged.notes(foreign=False) == (
        f"not restored (default privileges of another role): {statements[0]}",
    )
    text = b"SET SESSION AUTHORIZATION reader;\nGRANT SELECT ON TABLE public.t TO x;\nRESET SESSION AUTHORIZATION;\n"
    assert grants.plain_statements(text) == ["GRANT SELECT ON TABLE public.t TO x;"]
