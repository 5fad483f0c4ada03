"""A plain dump on its way into psql's restricted mode.

A plain dump is a psql script. recoverctl loads it with psql in restricted mode (a
\\restrict line with a key of its own comes first, so that no meta-command of the file
runs) and as a role that owns nothing but the scratch database: that confinement is the
server's and psql's, not this module's. What this module does is make pg_dump's own output
load under that confinement, and say why a file failed when it did:

- pg_dump's \\restrict and \\unrestrict lines go: psql refuses a second \\restrict;
- `ALTER … OWNER TO role;` lines go: every object ends up owned by the database's owner,
  as `pg_restore --no-owner` does for an archive (the load's role could not give them away);
- pg_dump --create's preamble goes: DROP/CREATE/ALTER/COMMENT ON DATABASE statements and
  the one `\\connect` to that same database, all before the first other statement
  (recoverctl makes the database itself);
- with `roles` given, a GRANT or REVOKE naming a role the server lacks goes (core/grants:
  the restore's plan lists them).

Anything else passes unchanged. A line this module does not recognise is not a risk: psql
refuses a meta-command, the server a statement the role may not run. COPY data is passed
through without being looked at, so it costs a search for its end, not a pass over its lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from recoverctl.core import grants

_RESTRICT = re.compile(rb"\\(?:un)?restrict(?:[ \t]+\S*)?[ \t]*\Z")
_COPY_FROM_STDIN = re.compile(rb"COPY .* FROM stdin;\Z")
_OWNER_TO = re.compile(rb"ALTER (?:[A-Z]+ ){1,4}.+ OWNER TO (?:\"(?:[^\"]|\"\")+\"|[^\s;\"]+);\Z")
_DATABASE_STMT = re.compile(rb"(?:DROP|CREATE|ALTER|COMMENT ON) DATABASE ")
_CONNECT = re.compile(rb"\\(?:connect|c)[ \t]+(.*?)[ \t]*\Z")
_REUSE = re.compile(rb"-reuse-previous=on \"dbname='((?:[^']|'')*)'\"\Z")
_SETTING = re.compile(rb"(?:SET |SELECT pg_catalog\.set_config\()")
_DROP = re.compile(rb"DROP (?!DATABASE)[A-Z ]+ ")
_CREATE = re.compile(rb"CREATE ")
# Room for the longest end-of-data marker, "\n\\.\r\n", kept back between reads.
_MARKER_ROOM = 4


@dataclass
class Notes:
    """What the filter saw that explains a failed load: the line and its cause."""

    meta_command: str | None = None  # the first meta-command passed on (psql refuses it)
    clean: str | None = None  # a DROP before anything was created: pg_dump --clean
    preamble_database: str | None = None  # the --create preamble's database, when one went
    owner_lines: int = 0
    skipped_grants: int = 0

    def cause(self) -> str | None:
        if self.clean is not None:
            return (
                f"the file was made with pg_dump --clean ({self.clean}): its DROP statements "
                "fail on the new, empty database a load goes into"
            )
        if self.meta_command is not None:
            return (
                f"{self.meta_command}: a psql meta-command, which recoverctl never runs "
                "(it loads a plain dump in psql's restricted mode)"
            )
        return None

    def hint(self) -> str | None:
        if self.clean is not None:
            return "Make the dump again without --clean (or with --clean --if-exists)."
        if self.meta_command is not None:
            return "Load only a dump of one database made by pg_dump; recoverctl backup makes one."
        return None


@dataclass
class ScriptFilter:
    """Streams a plain dump's bytes through the rules above; `notes` fills as it reads."""

    notes: Notes = field(default_factory=Notes)
    roles: frozenset[str] | None = None  # the server's roles; None: every grant passes
    _line_no: int = 0
    _in_copy: bool = False
    _copy_line_start: bool = True  # the undecided COPY bytes kept back start a line
    _preamble_open: bool = True  # nothing but settings and --create's statements so far
    _created: bool = False  # a CREATE of any object went by

    def __call__(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        buf = b""
        for chunk in chunks:
            buf += chunk
            out, buf = self._feed(buf, final=False)
            if out:
                yield out
        out, rest = self._feed(buf, final=True)
        if out or rest:
            yield out + rest

    def _feed(self, buf: bytes, *, final: bool) -> tuple[bytes, bytes]:
        """Passes on what can be judged now; returns it and the undecided rest."""
        parts: list[bytes] = []
        pos = 0
        n = len(buf)
        while pos < n:
            if self._in_copy:
                end = self._copy_end(buf, pos, line_start=self._copy_line_start)
                if end is None:
                    keep = n if final else max(pos, n - _MARKER_ROOM)
                    if keep > pos:
                        self._copy_line_start = buf[keep - 1 : keep] == b"\n"
                    parts.append(buf[pos:keep])
                    pos = keep
                    break
                parts.append(buf[pos:end])
                self._line_no += 1  # the marker's own line; data lines are not counted
                pos = end
                self._in_copy = False
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if not final:
                    break
                nl = n
            line = buf[pos:nl]
            self._line_no += 1
            if self._keep(line.rstrip(b"\r")):
                parts.append(buf[pos : nl + 1])
            pos = nl + 1
        return b"".join(parts), buf[pos:] if pos < n else b""

    @staticmethod
    def _copy_end(buf: bytes, pos: int, *, line_start: bool) -> int | None:
        """The offset just past the `\\.` line that ends the COPY data at pos (a line's
        start when line_start), or None when these bytes do not hold it yet."""
        at = pos
        while True:
            if at == pos and line_start and buf.startswith(b"\\.", pos):
                start = pos
            else:
                found = buf.find(b"\n\\.", at)
                if found < 0:
                    return None
                start = found + 1
            after = buf[start + 2 : start + 4]
            if after[:1] == b"\n":
                return start + 3
            if after == b"\r\n":
                return start + 4
            if after in (b"", b"\r"):
                return None  # the line is not whole yet
            at = start + 2  # a data line that only starts like the marker

    def _keep(self, line: bytes) -> bool:
        if not line.strip() or line.startswith(b"--"):
            return True
        if line.startswith(b"\\"):
            return self._meta(line)
        if self._preamble_open and _DATABASE_STMT.match(line):
            name = line.split(b" DATABASE ", 1)[1].split(b" ", 1)[0].rstrip(b";")
            self.notes.preamble_database = _unquote(name)
            return False
        if _OWNER_TO.match(line):
            self.notes.owner_lines += 1
            return False
        if self.roles is not None and line.startswith((b"GRANT ", b"REVOKE ")):
            role = grants.grantee(line.decode("utf-8", "replace"))
            if role is not None and role.lower() != "public" and role not in self.roles:
                self.notes.skipped_grants += 1
                return False
        if not _SETTING.match(line):
            self._preamble_open = False
            if _CREATE.match(line):
                self._created = True
            elif not self._created and self.notes.clean is None and _DROP.match(line):
                self.notes.clean = f"line {self._line_no}: {_shown(line)}"
        if _COPY_FROM_STDIN.match(line):
            self._in_copy, self._copy_line_start = True, True
        return True

    def _meta(self, line: bytes) -> bool:
        if _RESTRICT.match(line):
            return False
        connect = _CONNECT.match(line)
        if (
            connect is not None
            and self._preamble_open
            and self.notes.preamble_database is not None
            and _connect_target(connect.group(1)) == self.notes.preamble_database
        ):
            self._preamble_open = False  # one \connect: what follows is the database's own
            return False
        if self.notes.meta_command is None:
            self.notes.meta_command = f"line {self._line_no}: {_shown(line)}"
        return True


def _unquote(name: bytes) -> str:
    text = name.decode("utf-8", "replace")
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def _connect_target(arg: bytes) -> str:
    reuse = _REUSE.match(arg)
    if reuse is not None:
        return reuse.group(1).decode("utf-8", "replace").replace("''", "'")
    return _unquote(arg)


def _shown(line: bytes, limit: int = 80) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"
