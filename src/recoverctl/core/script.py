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
refuses a meta-command, the server a statement the role may not run. The rules apply only to
a line that starts a statement: quotes, dollar quotes and comments are followed across lines,
so a function's body or a multi-line string is never cut. COPY data is passed through
without being looked at, so it costs a search for its end, not a pass over its lines; so is
a line longer than LONG_LINE (an INSERT of a large value), which no rule is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from recoverctl.core import grants

_RESTRICT = re.compile(rb"\\(?:un)?restrict(?:[ \t]+\S*)?[ \t]*\Z")
_OWNER_TO = re.compile(rb"ALTER (?:[A-Z]+ ){1,4}.+ OWNER TO (?:\"(?:[^\"]|\"\")+\"|[^\s;\"]+);\Z")
_DATABASE_STMT = re.compile(rb"(?:DROP|CREATE|ALTER|COMMENT ON) DATABASE ")
_CONNECT = re.compile(rb"\\(?:connect|c)[ \t]+(.*?)[ \t]*\Z")
_REUSE = re.compile(rb"-reuse-previous=on \"dbname='((?:[^']|'')*)'\"\Z")
_SETTING = re.compile(rb"(?:SET |SELECT pg_catalog\.set_config\()")
_DROP = re.compile(rb"DROP (?!DATABASE)[A-Z ]+ ")
_CREATE = re.compile(rb"CREATE ")
# Room for the longest end-of-data marker, "\n\\.\r\n", kept back between reads.
_MARKER_ROOM = 4
LONG_LINE = 64 * 1024
# What the rules look at: a line starting so is kept whole, however long.
_RULED = (b"\\", b"ALTER ", b"GRANT ", b"REVOKE ", b"COPY ", b"DROP ", b"CREATE ", b"COMMENT ")
# Outside quotes: what opens one, a comment, the end of a statement. A `$` inside an
# identifier (a$b$c) opens nothing.
_NORMAL = re.compile(
    rb"'|\"|(?<![A-Za-z0-9_$\x80-\xff])\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$"
    rb"|/\*|--|;"
)
_COMMENT_EDGE = re.compile(rb"/\*|\*/")


@dataclass
class Notes:
    """What the filter saw that explains a failed load: the line and its cause."""

    meta_command: str | None = None  # the first meta-command passed on (psql refuses it)
    clean: str | None = None  # a DROP before anything was created: pg_dump --clean
    preamble_database: str | None = None  # the --create preamble's database, when one went
    owner_lines: int = 0
    skipped_grants: int = 0
    default_privileges: int = 0

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
    _quote: bytes | None = None  # the open quote: ', ", $tag$ or /* (nested _depth deep)
    _depth: int = 0
    _at_start: bool = True  # the next line starts a statement
    _head: bytes = b""  # the current statement's first line
    _long: bool = False  # a long line is passing through to its end

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
            if self._long:
                end = n if nl < 0 else nl + 1
                self._scan(buf[pos:end])
                parts.append(buf[pos:end])
                pos, self._long = end, nl < 0
                continue
            if nl < 0:
                if not final:
                    if n - pos > LONG_LINE and not buf.startswith(_RULED, pos):
                        self._line_no += 1
                        self._starts(buf[pos:n])
                        self._scan(buf[pos:n])
                        parts.append(buf[pos:n])
                        pos, self._long = n, True
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
        if not (self._at_start and self._quote is None):
            self._scan(line)  # inside a statement: passed on as it is
            self._copy_follows(line)
            return True
        if not line.strip() or line.startswith(b"--"):
            return True
        if line.startswith(b"\\"):
            return self._meta(line)
        if self._preamble_open and _DATABASE_STMT.match(line):
            name = _unquote(line.split(b" DATABASE ", 1)[1].split(b" ", 1)[0].rstrip(b";"))
            if self.notes.preamble_database in (None, name):
                self.notes.preamble_database = name
                return False
        if _OWNER_TO.match(line):
            self.notes.owner_lines += 1
            return False
        if self.roles is not None and line.startswith((b"GRANT ", b"REVOKE ")):
            role = grants.grantee(line.decode("utf-8", "replace"))
            if role is not None and role.lower() != "public" and role not in self.roles:
                self.notes.skipped_grants += 1
                return False
        if line.startswith((b"SET SESSION AUTHORIZATION ", b"RESET SESSION AUTHORIZATION;")):
            # Around a grant made by another role than the owner's: the load's role may
            # not become another; the grant is made as the owner.
            return False
        if line.startswith(b"ALTER DEFAULT PRIVILEGES FOR ROLE ") and line.endswith(b";"):
            # For another role: the load's role may not; new objects get the default.
            self.notes.default_privileges += 1
            return False
        self._starts(line)
        self._scan(line)
        self._copy_follows(line)
        return True

    def _starts(self, line: bytes) -> None:
        """A statement begins with this line."""
        self._head = line
        if not _SETTING.match(line):
            self._preamble_open = False
            if _CREATE.match(line):
                self._created = True
            elif not self._created and self.notes.clean is None and _DROP.match(line):
                self.notes.clean = f"line {self._line_no}: {_shown(line)}"

    def _copy_follows(self, line: bytes) -> None:
        """A statement ended on this line: when it was COPY ... FROM stdin (a quoted name
        may spread it over several lines), its data comes next."""
        if self._at_start and self._quote is None and self._head:
            if self._head.startswith(b"COPY ") and line.rstrip(b"\r").endswith(b" FROM stdin;"):
                self._in_copy, self._copy_line_start = True, True
            self._head = b""

    def _scan(self, text: bytes) -> None:
        """Follows quotes, dollar quotes and comments over text, and whether what follows
        it starts a statement."""
        pos, n = 0, len(text)
        while pos < n:
            q = self._quote
            if q is None:
                m = _NORMAL.search(text, pos)
                end = m.start() if m else n
                if text[pos:end].strip():
                    self._at_start = False
                if m is None:
                    return
                token, pos = m.group(0), m.end()
                if token == b";":
                    self._at_start = True
                elif token == b"--":
                    return
                elif token == b"/*":
                    self._quote, self._depth = token, 1
                else:
                    self._quote, self._at_start = token, False
            elif q == b"/*":
                m = _COMMENT_EDGE.search(text, pos)
                if m is None:
                    return
                pos = m.end()
                self._depth += 1 if m.group(0) == b"/*" else -1
                if self._depth == 0:
                    self._quote = None
            else:
                i = text.find(q, pos)
                if i < 0:
                    return
                if len(q) == 1 and text[i + 1 : i + 2] == q:  # '' or "" inside
                    pos = i + 2
                    continue
                pos, self._quote = i + len(q), None

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
            # To the preamble's own database (pg_dump writes it again after the database's
            # settings and comment, which go too): the load is in it already.
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
