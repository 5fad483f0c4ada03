"""The privileges a dump carries (GRANT and REVOKE statements): read from a custom
archive's table of contents, or from a plain dump's lines, and judged against the roles a
server has. A grant to a role the server lacks cannot be restored: it is skipped and said;
a grant to PUBLIC widens access and is said before a restore of a file recoverctl did not
make."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from recoverctl.core.dumpcheck import CUSTOM_MAGIC, NotADump

# pg_dump writes one grantee per statement: `GRANT … TO role;`, `REVOKE … FROM role;`.
_GRANTEE = re.compile(
    r"(?:GRANT|REVOKE) .* (?:TO|FROM) (\"(?:[^\"]|\"\")+\"|[A-Za-z_][A-Za-z0-9_$]*)"
    r"(?: WITH GRANT OPTION)?(?: GRANTED BY \S+)?;\Z",
    re.S,
)
_STATEMENT = re.compile(rb"^(?:GRANT|REVOKE|ALTER DEFAULT PRIVILEGES) [^\n]*;\r?$", re.M)
_AUTHORIZATION = ("SET SESSION AUTHORIZATION", "RESET SESSION AUTHORIZATION")
_DEFAULTS = "ALTER DEFAULT PRIVILEGES"


def grantee(statement: str) -> str | None:
    """The role a pg_dump GRANT or REVOKE names ("PUBLIC" included), None for another form."""
    m = _GRANTEE.fullmatch(statement.strip())
    if m is None:
        return None
    name = m.group(1)
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


@dataclass(frozen=True)
class Judged:
    applied: tuple[str, ...]  # every role they name exists (or PUBLIC)
    skipped: tuple[str, ...]  # a role they name does not exist here
    public: tuple[str, ...]  # GRANTs to PUBLIC: the file widens access
    unread: str | None = None  # why the privileges could not be read (none are restored)
    # ALTER DEFAULT PRIVILEGES FOR ROLE: for objects made later, by a role the load is not
    defaults: tuple[str, ...] = ()

    def notes(self, *, foreign: bool) -> tuple[str, ...]:
        found = [f"its privileges are not restored: {self.unread}"] if self.unread else []
        found += [f"skipped, its role does not exist here: {s}" for s in self.skipped]
        found += [f"not restored (default privileges of another role): {s}" for s in self.defaults]
        if foreign:
            found += [f"the file grants access to every role: {s}" for s in self.public]
        return tuple(found)


def judge(statements: Iterable[str], roles: Iterable[str]) -> Judged:
    known = {*roles, "public"}
    applied: list[str] = []
    skipped: list[str] = []
    public: list[str] = []
    defaults: list[str] = []
    for statement in statements:
        text = " ".join(statement.split())
        if text.startswith(_DEFAULTS):
            defaults.append(text)
            continue
        role = grantee(text)
        if role is None or role in known or role.lower() == "public":
            applied.append(statement)
        else:
            skipped.append(text)
        if role is not None and role.lower() == "public" and text.startswith("GRANT "):
            public.append(text)
    return Judged(tuple(applied), tuple(skipped), tuple(public), defaults=tuple(defaults))


def plain_statements(data: bytes) -> list[str]:
    """The GRANT and REVOKE lines of (part of) a plain dump."""
    return [m.group(0).decode("utf-8", "replace").rstrip("\r") for m in _STATEMENT.finditer(data)]


def archive_statements(head: bytes) -> list[str]:
    """The ACL entries of a custom archive's table of contents (head must hold all of it:
    NotADump says when it does not). Reads the format pg_dump's WriteToc writes, archive
    versions 1.12 to 1.16."""
    r = _Reader(head)
    if not head.startswith(CUSTOM_MAGIC):
        raise NotADump("not a custom archive")
    r.pos = len(CUSTOM_MAGIC)
    vmaj, vmin, _ = r.byte(), r.byte(), r.byte()
    r.int_size, r.off_size = r.byte(), r.byte()
    if vmaj != 1 or not 12 <= vmin <= 16 or r.byte() != 1:
        raise NotADump(f"unsupported custom archive (version {vmaj}.{vmin})")
    if vmin >= 15:
        r.byte()
    else:
        r.integer()
    for _ in range(7):
        r.integer()
    for _ in range(3):  # database, server version, pg_dump version
        r.text()
    found: list[str] = []
    for _ in range(r.count()):
        r.integer()  # dump id
        r.integer()  # had dumper
        r.text()  # table oid
        r.text()  # oid
        r.text()  # tag
        desc = r.text()
        r.integer()  # section
        defn = r.text()
        for _ in range(5 if vmin >= 14 else 4):  # drop, copy, namespace, tablespace, [tableam]
            r.text()
        if vmin >= 16:
            r.integer()  # relkind
        r.text()  # owner
        r.text()  # "false": WITH OIDS
        while r.text() is not None:  # dependencies
            pass
        r.byte()  # data state
        r.skip(r.off_size)
        if desc in ("ACL", "DEFAULT ACL") and defn:
            # One statement a line; "\n" only (splitlines would cut inside a quoted name).
            # A grant made by another role than the owner comes between SET and RESET
            # SESSION AUTHORIZATION, which the load's role may not run: made as the owner.
            found += [
                s
                for s in (line.strip() for line in defn.split("\n"))
                if s and not s.startswith(_AUTHORIZATION)
            ]
    return found


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.int_size = 4
        self.off_size = 8

    def skip(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise NotADump("the archive's table of contents is longer than what was read")
        self.pos += n

    def byte(self) -> int:
        self.skip(1)
        return self.data[self.pos - 1]

    def integer(self) -> int:
        sign = self.byte()
        self.skip(self.int_size)
        value = int.from_bytes(self.data[self.pos - self.int_size : self.pos], "little")
        return -value if sign else value

    def count(self) -> int:
        n = self.integer()
        if not 0 <= n <= 10_000_000:
            raise NotADump("the archive's table of contents is damaged")
        return n

    def text(self) -> str | None:
        n = self.integer()
        if n < 0:
            return None
        self.skip(n)
        return self.data[self.pos - n : self.pos].decode("utf-8", "replace")
