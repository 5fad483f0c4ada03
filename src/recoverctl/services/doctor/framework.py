"""doctor's framework: what a check is, what it needs, and how a run selects and runs them.

Each check is declared once, in its group's module, with that group's @checks.check: its
name, what it needs, and (its docstring's first paragraph) what it checks. registry.py
lists the groups in order; `--only`, `--list` and the README's list of checks all read it.

What checks need (the env file, the engine, the database, ...) is fetched once per run.
A need that is missing or broken is told once: by the check that reports on it (its gate,
e.g. `engine`) when that check is in the run, and the checks that need it are then left
out; otherwise each of them says so in its own row. One failure never stops the others.

Secrets are never printed, not even in part: checks name variables and compare values,
they do not show them.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from recoverctl.adapters import git, http, vault
from recoverctl.core import envcheck
from recoverctl.core.checks import FAIL, OK, WARN, Check, Finding, worst
from recoverctl.core.keyfile import KeyFile, parse_keyfile
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName, StackStatus
from recoverctl.core.stack import prod_flag as stack_prod_flag
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.services import catalog, offsite
from recoverctl.services.session import StackRef, StackSession
from recoverctl.services.stack import status
from recoverctl.settings import Settings, config_path

if TYPE_CHECKING:
    from recoverctl.adapters.engine import Engine
    from recoverctl.adapters.pgexec import Db
    from recoverctl.core import pitr
    from recoverctl.services.pitr import Paths


class Group(StrEnum):
    ENV = "env"
    GIT = "git"
    KEY = "key"
    STACK = "stack"
    POSTGRES = "postgres"
    BACKUPS = "backups"
    TARGETS = "targets"
    PITR = "pitr"


GROUPS: tuple[str, ...] = tuple(Group)


class Need(StrEnum):
    """What a check needs before it can judge anything."""

    ENV_FILE = "env file"
    GIT = "git checkout"
    KEY_FILE = "key file"
    VALID_KEY = "valid key file"
    ENGINE = "engine"
    DB = "db"
    APP_PORT = "app port"
    PITR = "archiving enabled"


# Fetched first, so that their failure is the one told: a database and a published port are
# found through the engine, and a key file is parsed only once it is found.
_REQUIRES: dict[Need, tuple[Need, ...]] = {
    Need.VALID_KEY: (Need.KEY_FILE,),
    Need.DB: (Need.ENGINE,),
    Need.APP_PORT: (Need.ENGINE,),
}

DEFAULT_PORTS = {"dev": "8000", "prod": "8080"}


@dataclass(frozen=True)
class Summary(JsonResult):
    """How many checks ended each way."""

    ok: int
    warn: int
    fail: int


@dataclass(frozen=True)
class DoctorReport(JsonResult):
    project: str
    stack: str = field(metadata=meta(schema=StackName))
    checks: tuple[Check, ...]
    seconds: float = field(metadata=meta(digits=2))

    @property
    @computed(after="stack")
    def ok(self) -> bool:
        return worst(self.checks) != FAIL

    @property
    @computed(after="ok")
    def summary(self) -> Summary:
        ok, warn, fail = (sum(c.status == s for c in self.checks) for s in (OK, WARN, FAIL))
        return Summary(ok, warn, fail)


class Unavailable(Exception):
    """A need that is absent rather than broken: no env file, no key file, no checkout."""

    def __init__(self, need: Need, evidence: str, fix: str = ""):
        super().__init__(evidence)
        self.need = need
        self.evidence = evidence
        self.fix = fix


@dataclass(frozen=True)
class EnvFile:
    """The stack's env file, as the env checks read it."""

    source: str  # as the user names it: .env or .env.production
    text: str
    values: Mapping[str, str | None]
    example: Mapping[str, str | None]  # .env.example's values, to spot copied secrets
    mode: int
    stack: envcheck.Stack


@dataclass(frozen=True)
class _Failed:
    error: RecoverctlError | Unavailable


class Context:
    """What the checks of one run need, each fetched on first use and kept, failures too:
    a broken need costs one attempt, not one per check that asks."""

    def __init__(self, session: StackSession):
        self.session = session
        self._cache: dict[str, Any] = {}

    @property
    def settings(self) -> Settings:
        return self.session.settings

    def _get(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = make()
            except (RecoverctlError, Unavailable) as exc:
                self._cache[key] = _Failed(exc)
        value = self._cache[key]
        if isinstance(value, _Failed):
            raise value.error
        return value

    def need(self, need: Need) -> object:
        fetch: dict[Need, Callable[[], object]] = {
            Need.ENV_FILE: self.env,
            Need.GIT: self.repo,
            Need.KEY_FILE: self.key_path,
            Need.VALID_KEY: self.key,
            Need.ENGINE: self.engine,
            Need.DB: self.db,
            Need.APP_PORT: self.port,
            Need.PITR: self.pitr_paths,
        }
        return fetch[need]()

    def causes(self, error: BaseException) -> set[Need]:
        """The needs whose failure this is (a db found through a dead engine: both)."""
        return {
            key
            for key, value in self._cache.items()
            if isinstance(key, Need) and isinstance(value, _Failed) and value.error is error
        }

    def env(self) -> EnvFile:
        env: EnvFile = self._get(Need.ENV_FILE, self._read_env)
        return env

    def _read_env(self) -> EnvFile:
        s = self.settings
        source = s.env_rel
        if not s.env_file.is_file():
            raise Unavailable(
                Need.ENV_FILE,
                f"{source} is missing",
                f"cp .env.example {source} && chmod 600 {source}, then set every change-me value",
            )
        from dotenv import dotenv_values

        # Bytes, decoded by hand: read_text() would turn CRLF into LF and hide it from the check.
        text = s.env_file.read_bytes().decode("utf-8", errors="replace")
        example_path = s.project_dir / ".env.example"
        return EnvFile(
            source=source,
            text=text,
            values=dotenv_values(stream=io.StringIO(text)),
            example=_example_values(example_path),
            mode=s.env_file.stat().st_mode,
            stack=s.stack,
        )

    def env_port(self) -> str:
        """The port the env file's hosts and origins must allow: the one published, when
        the engine can tell, else the file's VAULT_HTTP_PORT, else the stack's default."""
        try:
            return str(self.port())
        except RecoverctlError:
            return self.env().values.get("VAULT_HTTP_PORT") or DEFAULT_PORTS[self.settings.stack]

    def repo(self) -> Path:
        def find() -> Path:
            project = self.settings.project_dir
            found = git.toplevel(project)
            if found is None:
                raise Unavailable(
                    Need.GIT,
                    f"{project} is not a git checkout",
                    "Clone the project from git, as the playbook's quick recovery does",
                )
            return found

        repo: Path = self._get(Need.GIT, find)
        return repo

    def key_path(self) -> Path:
        def find() -> Path:
            path = self.settings.key_file
            if path is None:
                raise Unavailable(
                    Need.KEY_FILE, "no key backup configured", f"Set key_file in {config_hint()}"
                )
            if not path.is_file():
                raise Unavailable(
                    Need.KEY_FILE,
                    f"{path} does not exist",
                    "Export the key again from the vault's Key backup page in the browser, "
                    "save it there",
                )
            return path

        path: Path = self._get(Need.KEY_FILE, find)
        return path

    def key(self) -> KeyFile:
        def parse() -> KeyFile:
            return parse_keyfile(self.key_path().read_text(encoding="utf-8", errors="replace"))

        key: KeyFile = self._get(Need.VALID_KEY, parse)
        return key

    def ref(self) -> StackRef:
        ref: StackRef = self._get("ref", lambda: self.session.ref)
        return ref

    def engine(self) -> Engine:
        engine: Engine = self._get(Need.ENGINE, lambda: self.session.engine)
        return engine

    def db(self) -> Db:
        def attach() -> Db:
            self.engine()  # a dead engine fails here as the engine, from the cache
            return self.session.db()

        db: Db = self._get(Need.DB, attach)
        return db

    def status(self) -> StackStatus:
        current: StackStatus = self._get("status", lambda: status(self.engine(), self.ref()))
        return current

    def port(self) -> int:
        found: int = self._get(Need.APP_PORT, self._find_port)
        return found

    def _find_port(self) -> int:
        backend = next((s for s in self.status().services if s.service == "backend"), None)
        if backend is None:
            raise RecoverctlError(
                f"{self.settings.compose_rel} has no backend service",
                "Use the vault's own compose files",
                code=ErrorCode.SERVICE_MISSING,
            )
        port = http.published_port(backend.ports)
        if port is not None:
            return port
        if backend.state != "running":
            raise RecoverctlError(
                f"the backend is {backend.state}: it publishes no port",
                f"recoverctl up{prod_flag(self.settings)}",
                code=ErrorCode.SERVICE_NOT_RUNNING,
            )
        raise RecoverctlError(
            "the backend publishes no port on 127.0.0.1",
            "Check its ports: in the compose file; recoverctl up",
            code=ErrorCode.COMPOSE_INVALID,
        )

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = self._get(
            "report", lambda: vault.report(self.engine(), self.ref().project)
        )
        return data

    def listing(self) -> catalog.Listing:
        found: catalog.Listing = self._get("listing", lambda: catalog.list_backups(self.settings))
        return found

    def target_listing(self, name: str) -> offsite.TargetListing:
        """What target NAME holds, read once per run; its failure too."""

        def read() -> offsite.TargetListing:
            self.session.target(name).check()
            return offsite.list_target(self.session, name)

        found: offsite.TargetListing = self._get(f"target:{name}", read)
        return found

    # --- point-in-time recovery: each read once per run, its failure too ---

    def pitr_paths(self) -> Paths:
        """The stack's archiving files, when [pitr] is set and archiving is enabled."""

        def find() -> Paths:
            from recoverctl.services import pitr as svc

            if self.settings.pitr is None:
                raise Unavailable(
                    Need.PITR, "point-in-time recovery is not configured", svc.CONFIGURE_HINT
                )
            where = svc.paths(self.session)
            if not where.override.is_file():
                raise Unavailable(
                    Need.PITR,
                    f"archiving is not enabled for this stack ({_shown(where.override, self.settings)} "
                    "is missing)",
                    f"recoverctl pitr enable{prod_flag(self.settings)}",
                )
            return where

        found: Paths = self._get(Need.PITR, find)
        return found

    def pitr_repos(self) -> list[pitr.Repo]:
        from recoverctl.services import pitr as svc

        found: list[pitr.Repo] = self._get("pitr:repos", lambda: svc.repos(self.session))
        return found

    def archiver(self) -> pitr.Archiver:
        from recoverctl.services import pitr as svc

        found: pitr.Archiver = self._get("pitr:archiver", lambda: svc.archiver(self.db()))
        return found

    def stanza(self) -> pitr.StanzaInfo:
        """pgBackRest's info on every repository."""
        from recoverctl.services import pitr as svc

        found: pitr.StanzaInfo = self._get("pitr:info", lambda: svc.info(self.db()))
        return found

    def archive_gaps(self, repo: pitr.Repo, held: pitr.RepoInfo) -> tuple[pitr.Gap, ...] | None:
        """WAL missing from repo's archive; None when the archive cannot be listed (then
        nothing is known of its gaps, and pitr.window says so)."""
        from recoverctl.services import pitr as svc

        def listed() -> tuple[pitr.Gap, ...] | None:
            try:
                return svc.gaps(self.db(), repo, held, self.archiver().last_archived_wal)
            except RecoverctlError:
                return None

        found: tuple[pitr.Gap, ...] | None = self._get(f"pitr:gaps:{repo.name}", listed)
        return found

    def pgbackrest_version(self) -> tuple[int, int]:
        from recoverctl.services import pitr as svc

        found: tuple[int, int] = self._get("pitr:version", lambda: svc.version(self.db()))
        return found


def _shown(path: Path, settings: Settings) -> str:
    """path as the user names it: relative to the project when inside it."""
    try:
        return str(path.relative_to(settings.project_dir))
    except ValueError:
        return str(path)


Result = Finding | Mapping[str, Finding] | None
CheckFn = Callable[[Context], Result]
F = TypeVar("F", bound=CheckFn)


@dataclass(frozen=True)
class CheckSpec(JsonResult):
    """A check as declared; its JSON is its row in `doctor --list`."""

    name: str = field(metadata=INTERNAL)  # stable: scripts filter on it, --only selects by it
    group: Group
    run: CheckFn = field(metadata=INTERNAL)  # None where it does not apply (CORS in prod)
    about: str  # what it checks, one line
    needs: tuple[Need, ...] = field(default=(), metadata=meta(after="group"))
    # The need this check reports on: while it is in the run, checks needing that need
    # are left out when it is missing, instead of each saying so.
    gates: Need | None = field(default=None, metadata=INTERNAL)
    # One row per such item (a compose service), named <name>.<item>.
    each: str = field(default="", metadata=INTERNAL)

    @property
    @computed(after="", name="name")
    def label(self) -> str:
        return f"{self.name}.<{self.each}>" if self.each else self.name

    @property
    def all_needs(self) -> tuple[Need, ...]:
        """needs, each after what it requires."""
        found: list[Need] = []

        def add(need: Need) -> None:
            for first in _REQUIRES.get(need, ()):
                add(first)
            if need not in found:
                found.append(need)

        for need in self.needs:
            add(need)
        return tuple(found)

    def covers(self, selector: str) -> bool:
        """selector is this check's group, its name, or a prefix of it (db for db.*)."""
        return selector in (self.group, self.name) or self.name.startswith(selector + ".")

    def has_row(self, selector: str) -> bool:
        """selector names one of this check's rows (service.db)."""
        return bool(self.each) and selector.startswith(self.name + ".")


class GroupChecks:
    """One group's checks, in the order its module declares them (the order doctor runs
    and lists them in)."""

    def __init__(self, group: Group) -> None:
        self.group = group
        self.specs: list[CheckSpec] = []

    def check(
        self, name: str, *, needs: Iterable[Need] = (), gates: Need | None = None, each: str = ""
    ) -> Callable[[F], F]:
        """Declares a check: the one place its name is written. The function's docstring, up
        to its first blank line, says what it checks in --list and the README."""

        def declare(fn: F) -> F:
            about = " ".join((fn.__doc__ or "").split("\n\n")[0].split())
            self.specs.append(CheckSpec(name, self.group, fn, about, tuple(needs), gates, each))
            return fn

        return declare


@dataclass(frozen=True)
class CheckList(JsonResult):
    """`doctor --list`: the checks, as declared."""

    checks: tuple[CheckSpec, ...]


def select(
    registry: Sequence[CheckSpec], groups: Iterable[str] = GROUPS, only: Iterable[str] | None = None
) -> tuple[CheckSpec, ...]:
    """The checks of groups, in registry order; with only, those a selector picks: a group,
    a check's name, a prefix of names (db), or one row of a per-service check."""
    wanted = tuple(groups)
    selectors = tuple(only or ())
    for name in wanted:
        if name not in GROUPS:
            raise UsageError(
                f"Unknown check group {name!r}.",
                "Groups: " + ", ".join(GROUPS) + ".",
                code=ErrorCode.USAGE,
            )
    for selector in selectors:
        if not any(s.covers(selector) or s.has_row(selector) for s in registry):
            raise UsageError(
                f"Unknown check or group {selector!r}.",
                "Groups: " + ", ".join(GROUPS) + "; every check: recoverctl doctor --list.",
                code=ErrorCode.USAGE,
            )
    return tuple(
        s
        for s in registry
        if s.group in wanted
        and (not selectors or any(s.covers(x) or s.has_row(x) for x in selectors))
    )


def run_checks(ctx: Context, specs: Sequence[CheckSpec], only: Sequence[str] = ()) -> list[Check]:
    """Every check's rows, in order; whatever one check raises becomes its own row."""
    rows: list[Check] = []
    for spec in specs:
        found = _evaluate(ctx, spec, specs)
        if only and spec.each and not any(spec.covers(x) for x in only):
            # Picked by one of its rows (--only service.db): that row alone, or its failure.
            found = [r for r in found if r.name in only or r.name == spec.name]
        rows += found
    return rows


def _evaluate(ctx: Context, spec: CheckSpec, run: Sequence[CheckSpec]) -> list[Check]:
    try:
        for need in spec.all_needs:
            ctx.need(need)
        result = spec.run(ctx)
    except Unavailable as exc:
        if _told_by_another(spec, {exc.need}, run):
            return []
        return [Check(spec.name, WARN, f"not checked: {exc.evidence}", exc.fix)]
    except RecoverctlError as exc:
        if _told_by_another(spec, ctx.causes(exc), run):
            return []
        return [Check(spec.name, FAIL, one_line(exc.message), one_line(exc.hint or ""))]
    if result is None:
        return []
    if isinstance(result, Finding):
        return [result.named(spec.name)]
    return [finding.named(f"{spec.name}.{item}") for item, finding in result.items()]


def _told_by_another(spec: CheckSpec, failed: set[Need], run: Sequence[CheckSpec]) -> bool:
    """A failed need this check relies on has its own check in the run, whose row says it."""
    relied = failed & {*spec.all_needs, *([spec.gates] if spec.gates else [])}
    return any(other.gates in relied for other in run if other is not spec)


def one_line(text: str) -> str:
    return " ".join(text.split())


def _example_values(path: Path) -> dict[str, str | None]:
    """.env.example's values, decoded by hand: a Latin-1 comment must not stop doctor."""
    from dotenv import dotenv_values

    if not path.is_file():
        return {}
    return dict(dotenv_values(stream=io.StringIO(path.read_bytes().decode("utf-8", "replace"))))


def prod_flag(settings: Settings) -> str:
    return stack_prod_flag(settings.stack)


def config_hint() -> str:
    return str(config_path(os.environ))
