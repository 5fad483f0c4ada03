"""pgBackRest in the db container, in memory: the repositories' base backups (`backup`,
`info --output=json` in pgBackRest's shape, `verify`, `expire` keeping keep_full fulls) and
the server's archiver (the row of core/pitr.ARCHIVER_SQL). Each command can be made to fail
for one repository, with pgBackRest's own kind of error line."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from recoverctl.adapters.pgexec import Db, ExecResult, Sink
from recoverctl.core import pitr
from recoverctl.core.commands import Argv

from .engine import FakeEngine


@dataclass
class Held:
    label: str
    type: str
    started: datetime
    stopped: datetime


@dataclass
class Archiving:
    last_archived_at: datetime | None
    failed_at: datetime | None = None
    ready: int = 0
    failed_count: int = 0


def _iso(when: datetime | None) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if when else ""


@dataclass
class FakePgBackRest(Db):
    """Db's run and query, answering pgBackRest's commands and the archiver's row only."""

    engine_: FakeEngine = field(default_factory=FakeEngine)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    repos: dict[int, list[Held]] = field(default_factory=dict)
    archiving: Archiving | None = None
    keep_full: int = 2
    failing: dict[tuple[str, int], str] = field(default_factory=dict)  # (command, repo): why
    ran: list[str] = field(default_factory=list)  # "command repo", in order
    archiver_rows: list[Archiving] = field(default_factory=list)  # answered first, one each

    def __post_init__(self) -> None:
        super().__init__(self.engine_, self.engine_.add("db"), "vault", "vault")
        if self.archiving is None:
            self.archiving = Archiving(self.now - timedelta(seconds=5))

    def hold(self, repo: int, kind: str, age: timedelta) -> None:
        stopped = self.now - age
        stamp = stopped.strftime("%Y%m%d-%H%M%S")
        self.repos.setdefault(repo, []).append(
            Held(f"{stamp}{kind[0].upper()}", kind, stopped - timedelta(seconds=3), stopped)
        )

    # --- Db -----------------------------------------------------------------------------

    def run(
        self,
        argv: Argv,
        *,
        stdin: Iterable[bytes] | None = None,
        on_stdout: Sink | None = None,
    ) -> ExecResult:
        assert argv[0] == "pgbackrest" and argv[1] == f"--stanza={pitr.STANZA}", argv
        command = argv[-1]
        repo = next((int(a.split("=")[1]) for a in argv if a.startswith("--repo=")), 0)
        self.ran.append(f"{command} {repo}" if repo else command)
        why = self.failing.get((command, repo))
        if why is not None:
            return ExecResult(argv, 1, b"", f"ERROR: [104]: {why}", None)
        if command == "backup":
            kind = next(a.split("=")[1] for a in argv if a.startswith("--type="))
            self.hold(repo, kind, timedelta(0))
        elif command == "expire":
            fulls = [b for b in self.repos.get(repo, []) if b.type == "full"]
            for old in fulls[: max(0, len(fulls) - self.keep_full)]:
                self.repos[repo].remove(old)
        elif command == "info":
            return ExecResult(argv, 0, self.info().encode(), "", None)
        return ExecResult(argv, 0, b"", "", None)

    def query(self, sql: str, database: str | None = None) -> str:
        assert sql == pitr.ARCHIVER_SQL, sql
        a = self.archiver_rows.pop(0) if self.archiver_rows else self.archiving
        assert a is not None
        fields = [
            "000000010000000000000003" if a.last_archived_at else "",
            _iso(a.last_archived_at),
            str(a.failed_count),
            "000000010000000000000004" if a.failed_at else "",
            _iso(a.failed_at),
            "000000010000000000000005",
            str(a.ready),
            "50331648",
            "on",
            _iso(self.now),
        ]
        return "\t".join(fields) + "\n"

    def info(self) -> str:
        backups = [
            {
                "label": b.label,
                "type": b.type,
                "database": {"repo-key": key},
                "timestamp": {"start": int(b.started.timestamp()),
                              "stop": int(b.stopped.timestamp())},
                "archive": {"start": "000000010000000000000002", "stop": "000000010000000000000002"},
                "info": {"size": 1000, "repository": {"delta": 100}},
                "error": False,
            }
            for key, held in sorted(self.repos.items())
            for b in held
        ]  # fmt: skip
        return json.dumps([{
            "name": pitr.STANZA,
            "status": {"code": 0, "message": "ok"},
            "cipher": "aes-256-cbc",
            "repo": [{"key": k, "status": {"code": 0, "message": "ok"}} for k in sorted(self.repos)],
            "backup": backups,
            "archive": [],
        }])  # fmt: skip
