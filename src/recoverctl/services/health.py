"""The health checks behind doctor (and recover's final checks): every check runs, each ok / warn / fail with one line of evidence and one of fix.

Each check is declared once, with @check: its name, group, what it needs, and (its
docstring's first paragraph) what it checks. REGISTRY holds them in order; `--only`,
`--list` and the README's list of checks all read it.

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
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from recoverctl.adapters import git, http, process, vault
from recoverctl.adapters.pgexec import exec_in
from recoverctl.core import commands, envcheck, pg
from recoverctl.core.checks import FAIL, OK, WARN, Check, Finding, worst
from recoverctl.core.drill import freshness as drill_freshness
from recoverctl.core.drill import rto as drill_rto
from recoverctl.core.duration import DAY, HOUR, MINUTE, in_units
from recoverctl.core.keyfile import KeyFile, KeyFileError, parse_keyfile
from recoverctl.core.stack import ServiceStatus, StackStatus, describe_problem
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.services import catalog, offsite
from recoverctl.services.session import StackRef, StackSession
from recoverctl.services.stack import status
from recoverctl.settings import Settings, config_path

if TYPE_CHECKING:
    from recoverctl.adapters.engine import Engine
    from recoverctl.adapters.pgexec import Db


class Group(StrEnum):
    ENV = "env"
    GIT = "git"
    KEY = "key"
    STACK = "stack"
    BACKUPS = "backups"
    TARGETS = "targets"


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


# Fetched first, so that their failure is the one told: a database and a published port are
# found through the engine, and a key file is parsed only once it is found.
_REQUIRES: dict[Need, tuple[Need, ...]] = {
    Need.VALID_KEY: (Need.KEY_FILE,),
    Need.DB: (Need.ENGINE,),
    Need.APP_PORT: (Need.ENGINE,),
}

GITIGNORE_ENTRIES = (
    ".env",
    ".env.production",
    "backups/",
    "frontend/node_modules/",
    "**/*.zkkey.json",
    "*.dump",
    "*.sql",
)
SPACE_MARGIN = 2.0  # free space wanted on the backups disk, in database sizes
DEFAULT_PORTS = {"dev": "8000", "prod": "8080"}


@dataclass(frozen=True)
class DoctorReport:
    project: str
    stack: str
    checks: tuple[Check, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return worst(self.checks) != FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "ok": self.ok,
            "summary": {s: sum(c.status == s for c in self.checks) for s in (OK, WARN, FAIL)},
            "checks": [c.to_json() for c in self.checks],
            "seconds": round(self.seconds, 2),
        }


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
                f"recoverctl up{_prod_flag(self.settings)}",
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


Result = Finding | Mapping[str, Finding] | None
CheckFn = Callable[[Context], Result]
F = TypeVar("F", bound=CheckFn)


@dataclass(frozen=True)
class CheckSpec:
    name: str  # stable: scripts filter on it, --only selects by it
    group: Group
    run: CheckFn  # returns None where the check does not apply (CORS in prod)
    about: str  # what it checks, one line
    needs: tuple[Need, ...] = ()
    # The need this check reports on: while it is in the run, checks needing that need
    # are left out when it is missing, instead of each saying so.
    gates: Need | None = None
    each: str = ""  # one row per such item (a compose service), named <name>.<item>

    @property
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

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.label,
            "group": str(self.group),
            "needs": [str(n) for n in self.needs],
            "about": self.about,
        }


_declared: list[CheckSpec] = []


def check(
    name: str, group: Group, *, needs: Iterable[Need] = (), gates: Need | None = None,
    each: str = "",
) -> Callable[[F], F]:  # fmt: skip
    """Declares a check: the one place its name is written. The function's docstring, up to
    its first blank line, says what it checks in --list and the README."""

    def declare(fn: F) -> F:
        about = " ".join((fn.__doc__ or "").split("\n\n")[0].split())
        _declared.append(CheckSpec(name, group, fn, about, tuple(needs), gates, each))
        return fn

    return declare


@dataclass(frozen=True)
class CheckList:
    """`doctor --list`: the checks, as declared."""

    checks: tuple[CheckSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return {"checks": [c.to_json() for c in self.checks]}


def select(
    groups: Iterable[str] = GROUPS, only: Iterable[str] | None = None
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
        if not any(s.covers(selector) or s.has_row(selector) for s in REGISTRY):
            raise UsageError(
                f"Unknown check or group {selector!r}.",
                "Groups: " + ", ".join(GROUPS) + "; every check: recoverctl doctor --list.",
                code=ErrorCode.USAGE,
            )
    return tuple(
        s
        for s in REGISTRY
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
        return [Check(spec.name, FAIL, _one_line(exc.message), _one_line(exc.hint or ""))]
    if result is None:
        return []
    if isinstance(result, Finding):
        return [result.named(spec.name)]
    return [finding.named(f"{spec.name}.{item}") for item, finding in result.items()]


def _told_by_another(spec: CheckSpec, failed: set[Need], run: Sequence[CheckSpec]) -> bool:
    """A failed need this check relies on has its own check in the run, whose row says it."""
    relied = failed & {*spec.all_needs, *([spec.gates] if spec.gates else [])}
    return any(other.gates in relied for other in run if other is not spec)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _example_values(path: Path) -> dict[str, str | None]:
    """.env.example's values, decoded by hand: a Latin-1 comment must not stop doctor."""
    from dotenv import dotenv_values

    if not path.is_file():
        return {}
    return dict(dotenv_values(stream=io.StringIO(path.read_bytes().decode("utf-8", "replace"))))


def _prod_flag(settings: Settings) -> str:
    return " --prod" if settings.stack == "prod" else ""


def doctor(
    session: StackSession, groups: Iterable[str] = GROUPS, only: Iterable[str] | None = None
) -> DoctorReport:
    """Runs the checks of groups (every group by default), or those only selects (see
    select); never raises for a failed check, only for an unknown group or selector."""
    started = time.monotonic()
    selectors = tuple(only or ())
    ctx = Context(session)
    rows = run_checks(ctx, select(groups, selectors), selectors)
    try:
        project = ctx.ref().project
    except RecoverctlError:
        project = session.settings.project_name or session.settings.project_dir.name
    return DoctorReport(project, session.settings.stack, tuple(rows), time.monotonic() - started)


def config_hint() -> str:
    return str(config_path(os.environ))


# --- env ---------------------------------------------------------------------------------


@check("env.file", Group.ENV, gates=Need.ENV_FILE)
def _env_file(ctx: Context) -> Finding:
    """The stack's env file (.env, or .env.production for --prod) exists."""
    try:
        env = ctx.env()
    except Unavailable as missing:
        return Finding(FAIL, missing.evidence, missing.fix)
    return Finding(OK, f"{env.source} exists")


@check("env.mode", Group.ENV, needs=[Need.ENV_FILE])
def _env_mode(ctx: Context) -> Finding:
    """The env file is mode 600: only its owner can read the database password and
    Django's key."""
    env = ctx.env()
    return envcheck.check_env_mode(env.mode, env.source)


@check("env.line_endings", Group.ENV, needs=[Need.ENV_FILE])
def _line_endings(ctx: Context) -> Finding:
    """LF line endings: a stray carriage return would end up in values."""
    env = ctx.env()
    return envcheck.check_line_endings(env.text, env.source)


@check("env.syntax", Group.ENV, needs=[Need.ENV_FILE])
def _syntax(ctx: Context) -> Finding:
    """Every line is NAME=value, a comment or blank."""
    env = ctx.env()
    return envcheck.check_syntax(env.text, env.source)


@check("env.duplicates", Group.ENV, needs=[Need.ENV_FILE])
def _duplicates(ctx: Context) -> Finding:
    """No variable is set twice."""
    env = ctx.env()
    return envcheck.check_duplicates(env.text, env.source)


@check("env.required", Group.ENV, needs=[Need.ENV_FILE])
def _required(ctx: Context) -> Finding:
    """Every variable the backend requires is set."""
    env = ctx.env()
    return envcheck.check_required(env.values, env.stack, env.source)


@check("env.placeholders", Group.ENV, needs=[Need.ENV_FILE])
def _placeholders(ctx: Context) -> Finding:
    """No .env.example placeholder or copied example secret is left."""
    env = ctx.env()
    return envcheck.check_placeholders(env.values, env.example, env.stack, env.source)


@check("env.secret_key", Group.ENV, needs=[Need.ENV_FILE])
def _secret_key(ctx: Context) -> Finding:
    """DJANGO_SECRET_KEY is long and random enough for the backend to accept it."""
    env = ctx.env()
    return envcheck.check_secret_key(env.values, env.stack, env.source)


@check("env.debug", Group.ENV, needs=[Need.ENV_FILE])
def _debug(ctx: Context) -> Finding:
    """DJANGO_DEBUG is a boolean, and off in prod."""
    env = ctx.env()
    return envcheck.check_debug(env.values, env.stack, env.source)


@check("env.allowed_hosts", Group.ENV, needs=[Need.ENV_FILE])
def _allowed_hosts(ctx: Context) -> Finding:
    """DJANGO_ALLOWED_HOSTS allows the published address."""
    env = ctx.env()
    return envcheck.check_allowed_hosts(env.values, "127.0.0.1", ctx.env_port(), env.source)


@check("env.csrf_origins", Group.ENV, needs=[Need.ENV_FILE])
def _csrf_origins(ctx: Context) -> Finding:
    """DJANGO_CSRF_TRUSTED_ORIGINS trusts the published address, scheme and port."""
    env = ctx.env()
    return envcheck.check_csrf_origins(env.values, "127.0.0.1", ctx.env_port(), env.source)


@check("env.cors_origins", Group.ENV, needs=[Need.ENV_FILE])
def _cors_origins(ctx: Context) -> Finding | None:
    """Dev only: DJANGO_CORS_ALLOWED_ORIGINS lets the dev front end call the API."""
    env = ctx.env()
    if env.stack != "dev":
        return None  # prod serves the front end from its own origin
    return envcheck.check_cors_origins(env.values, env.source)


@check("env.key_location", Group.ENV, needs=[Need.ENV_FILE])
def _key_not_in_env(ctx: Context) -> Finding:
    """The env file does not point at the key backup."""
    env = ctx.env()
    bad = sorted(
        k
        for k, v in env.values.items()
        if k.startswith("RECOVERCTL_KEY") or (v or "").endswith(".zkkey.json")
    )
    if bad:
        return Finding(
            FAIL,
            f"{env.source} names the key backup ({', '.join(bad)})",
            "Remove it: the key's location belongs in ~/.config/recoverctl/config.toml, never in .env",
        )
    return Finding(OK, f"{env.source} does not point at the key backup")


@check("env.running", Group.ENV, needs=[Need.ENV_FILE, Need.ENGINE])
def _running_matches(ctx: Context) -> Finding:
    """The running db and backend use the env file's database name, user and password
    (recreated since it changed)."""
    env = ctx.env()
    engine = ctx.engine()
    seen: dict[str, dict[str, str]] = {}
    for service in ("db", "backend"):
        found = engine.containers(ctx.ref().project, service)
        if not found:
            return Finding(WARN, f"{service} has no container: nothing to compare")
        items = found[0].attrs["Config"].get("Env") or []
        seen[service] = dict(item.split("=", 1) for item in items if "=" in item)
    stale = []
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        wanted = env.values.get(name) or ""
        differs = [svc for svc, values in seen.items() if values.get(name, "") != wanted]
        if differs:
            stale.append(f"{name} ({', '.join(differs)})")
    if stale:
        return Finding(
            FAIL,
            f"running containers use other values than {env.source}: {'; '.join(stale)}",
            "recoverctl up (recreates them); a changed POSTGRES_PASSWORD also needs ALTER ROLE",
        )
    return Finding(OK, f"db and backend run with {env.source}'s POSTGRES_* values")


# --- git ---------------------------------------------------------------------------------


def _rel(ctx: Context) -> Path:
    project = ctx.settings.project_dir
    repo = ctx.repo()
    return project.relative_to(repo) if project != repo else Path()


def _pathspecs(rel: Path) -> list[str]:
    """Env files, key backups and backups, wherever they are (as .gitignore has it)."""
    base = "" if str(rel) == "." else f"{rel}/"
    return [
        f"{base}.env", f"{base}.env.production", f"{base}backups",
        ":(glob)**/*.zkkey.json", f":(glob){base}**/*.dump", f":(glob){base}**/*.sql",
        f":(glob){base}backups/**",
    ]  # fmt: skip


@check("git.repo", Group.GIT, gates=Need.GIT)
def _repo(ctx: Context) -> Finding:
    """The project is a git checkout (the hygiene checks below need one)."""
    try:
        repo = ctx.repo()
    except Unavailable as missing:
        return Finding(WARN, missing.evidence, missing.fix)
    return Finding(OK, f"a git checkout ({repo})")


@check("git.ignored", Group.GIT, needs=[Need.GIT])
def _ignored(ctx: Context) -> Finding:
    """Env files, key exports and backups are ignored by git."""
    rel = _rel(ctx)
    paths = [
        str(rel / ".env"), str(rel / ".env.production"), str(rel / "backups") + "/",
        str(rel / "key.zkkey.json"), str(rel / "backups" / "backup_x.dump"),
        str(rel / "backups" / "backup_x.sql"),
    ]  # fmt: skip
    covered = git.ignored(ctx.repo(), paths)
    missing = [p for p in paths if p not in covered and p.rstrip("/") not in covered]
    if missing:
        return Finding(
            FAIL,
            "not ignored by git: " + ", ".join(missing),
            "Add the playbook's entries to .gitignore (.env, .env.production, backups/, **/*.zkkey.json)",
        )
    return Finding(OK, "env files, key backups and backups/ are ignored")


@check("git.tracked", Group.GIT, needs=[Need.GIT])
def _tracked(ctx: Context) -> Finding:
    """No env file, key export or backup (.dump, .sql) is tracked."""
    found = git.tracked(ctx.repo(), _pathspecs(_rel(ctx)))
    if found:
        return Finding(
            FAIL,
            "tracked by git: " + ", ".join(found[:5]),
            "git rm --cached those files and commit; then change every secret they held",
        )
    return Finding(OK, "no env file, key backup or backup is tracked")


@check("git.history", Group.GIT, needs=[Need.GIT])
def _history(ctx: Context) -> Finding:
    """No env file, key export or backup was ever committed, on any branch."""
    found = git.added_in_history(ctx.repo(), _pathspecs(_rel(ctx)))
    if found:
        shown = ", ".join(f"{path} in {commit}" for commit, path in found[:5])
        return Finding(
            FAIL,
            f"committed in the past: {shown}",
            "Change every secret they held; rewrite history (git filter-repo) if the repo is shared",
        )
    return Finding(OK, "no env file, key backup or backup was ever committed")


@check("git.gitignore", Group.GIT, needs=[Need.GIT])
def _gitignore(ctx: Context) -> Finding:
    """.gitignore has the playbook's recommended entries."""
    path = ctx.repo() / ".gitignore"
    text = path.read_bytes().decode("utf-8", "replace") if path.is_file() else ""
    lines = set(text.splitlines())
    missing = [e for e in GITIGNORE_ENTRIES if e not in lines]
    if missing:
        return Finding(
            WARN,
            ".gitignore lacks " + ", ".join(missing),
            "Add those lines to .gitignore (the playbook's recommended list)",
        )
    return Finding(OK, ".gitignore has the playbook's recommended entries")


# --- key backup --------------------------------------------------------------------------


@check("key.configured", Group.KEY, gates=Need.KEY_FILE)
def _key_configured(ctx: Context) -> Finding:
    """A key backup is configured (key_file); without one the vault must hold no secret
    yet."""
    path = ctx.settings.key_file
    if path is not None:
        return Finding(OK, f"key backup configured at {path}")
    where = f"key_file in {config_hint()}"
    try:
        total = int(ctx.report().get("secrets_total", 0))
    except RecoverctlError as exc:
        return Finding(
            FAIL,
            "no key backup configured, and the vault cannot tell whether it holds secrets: "
            + _one_line(exc.message),
            f"Export the key (Key backup -> Export) outside the repo, then set {where}",
        )
    if total:
        return Finding(
            FAIL,
            f"no key backup configured while the vault holds {total} secrets: unreadable after a crash",
            f"Export the key (Key backup -> Export) outside the repo, then set {where}",
        )
    return Finding(WARN, "no key backup configured (the vault holds no secret yet)", f"Set {where}")


@check("key.exists", Group.KEY, gates=Need.KEY_FILE)
def _key_exists(ctx: Context) -> Finding:
    """The configured key backup file exists."""
    try:
        path = ctx.key_path()
    except Unavailable as missing:
        if ctx.settings.key_file is None:
            raise  # not configured: key.configured's to say
        return Finding(FAIL, missing.evidence, missing.fix)
    return Finding(OK, f"{path} exists")


@check("key.location", Group.KEY, needs=[Need.KEY_FILE])
def _key_place(ctx: Context) -> Finding:
    """The key backup lies outside the repository, the docker build context and backups/."""
    settings = ctx.settings
    path = ctx.key_path()
    real = path.resolve()
    places = {
        "the repository": settings.project_dir.resolve(),
        "the backups folder": settings.backup_dir.resolve(),
        "the docker build context": (settings.project_dir / "vault").resolve(),
    }
    inside = [name for name, folder in places.items() if real == folder or folder in real.parents]
    if inside:
        return Finding(
            FAIL,
            f"{path} lies inside {inside[0]}",
            "Move it outside the project (and out of backups/), then update key_file",
        )
    return Finding(OK, "outside the repository, the build context and backups/")


@check("key.mode", Group.KEY, needs=[Need.KEY_FILE])
def _key_mode(ctx: Context) -> Finding:
    """The key backup is mode 600: only its owner can read it."""
    path = ctx.key_path()
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding(FAIL, f"{path} is mode {oct(mode)}: others can read it", f"chmod 600 {path}")
    return Finding(OK, f"mode {oct(mode)}")


@check("key.valid", Group.KEY, needs=[Need.KEY_FILE], gates=Need.VALID_KEY)
def _key_valid(ctx: Context) -> Finding:
    """The key backup is a well-formed zkkey v1 export."""
    try:
        kf = ctx.key()
    except KeyFileError as exc:
        return Finding(FAIL, "; ".join(exc.problems)[:300], _one_line(exc.hint or ""))
    return Finding(OK, f"zkkey v1, RSA-{kf.modulus_length}, {kf.fingerprint[:19]}…")


@check("key.registered", Group.KEY, needs=[Need.VALID_KEY, Need.ENGINE])
def _registered(ctx: Context) -> Finding:
    """The key backup's fingerprint is a vault user's registered key."""
    kf = ctx.key()
    users = [u for u in ctx.report().get("users", []) if u.get("fingerprint") == kf.fingerprint]
    if not users:
        return Finding(
            FAIL,
            "the key backup's fingerprint belongs to no vault user",
            "This is another key (or another vault's): find the export that matches the vault",
        )
    u = users[0]
    return Finding(OK, f"matches {u['username']}'s registered key ({u['secrets']} secrets)")


# --- engine and stack --------------------------------------------------------------------


@check("engine", Group.STACK, needs=[Need.ENGINE], gates=Need.ENGINE)
def _engine(ctx: Context) -> Finding:
    """The Docker engine answers."""
    version = ctx.engine().version().get("Version", "?")
    return Finding(OK, f"Docker engine {version} answers")


@check("compose.valid", Group.STACK, needs=[Need.ENV_FILE])
def _compose_valid(ctx: Context) -> Finding:
    """`docker compose config` accepts the compose file with the env file."""
    s = ctx.settings
    done = process.run(commands.compose_config_check(ctx.ref().target()), check=False, timeout=60)
    if done.returncode != 0:
        return Finding(
            FAIL,
            _one_line(done.stderr_tail)[:300] or "docker compose config failed",
            f"Fix {s.compose_rel} or {s.env_rel}",
        )
    return Finding(OK, f"{s.compose_rel} with {s.env_rel} is valid")


@check("service", Group.STACK, needs=[Need.ENGINE], each="service")
def _services(ctx: Context) -> dict[str, Finding]:
    """Each compose service is running, and healthy where it has a healthcheck."""
    return {s.service: _service(ctx, s) for s in ctx.status().services}


def _service(ctx: Context, s: ServiceStatus) -> Finding:
    if s.ready:
        return Finding(OK, f"{s.state}, {s.health or 'no healthcheck'}")
    if s.state == "running" and s.health == "starting":
        return Finding(
            WARN, f"{s.service} is running, still starting", "Run doctor again in a few seconds"
        )
    return Finding(
        FAIL,
        describe_problem(s),
        f"recoverctl up{_prod_flag(ctx.settings)}; recoverctl logs {s.service}",
    )


@check("db.answers", Group.STACK, needs=[Need.DB])
def _db_answers(ctx: Context) -> Finding:
    """PostgreSQL answers a query."""
    version = ctx.db().query(pg.SERVER_VERSION_SQL).strip()
    return Finding(OK, f"PostgreSQL {version} answers")


@check("db.not_empty", Group.STACK, needs=[Need.DB])
def _db_not_empty(ctx: Context) -> Finding:
    """The database has tables and at least one user."""
    db = ctx.db()
    tables = db.tables()
    if not tables:
        return Finding(
            FAIL,
            f"database {db.database} has no tables",
            "Restore the newest backup: recoverctl restore latest (or recoverctl recover)",
        )
    users = (
        "public.auth_user" in tables and db.query("SELECT count(*) FROM public.auth_user").strip()
    )
    if not users or users == "0":
        return Finding(
            WARN,
            f"database {db.database} has {len(tables)} tables but no user",
            "If it should hold data, restore: recoverctl restore latest",
        )
    return Finding(OK, f"{len(tables)} tables, {users} users")


@check("db.leftovers", Group.STACK, needs=[Need.DB])
def _leftover_databases(ctx: Context) -> Finding:
    """No database left behind by an interrupted restore or verify."""
    from recoverctl.services.load import leftovers

    found = leftovers(ctx.db())
    if found:
        return Finding(
            WARN,
            "left by an interrupted restore or verify: " + ", ".join(found[:3]),
            "Once you no longer need them: DROP DATABASE each (they hold copies of the data)",
        )
    return Finding(OK, "no database left behind by an interrupted run")


@check("db.migrations", Group.STACK, needs=[Need.ENGINE])
def _migrations(ctx: Context) -> Finding:
    """No unapplied migration (manage.py migrate --check in the backend)."""
    engine = ctx.engine()
    backend = engine.service_container(ctx.ref().project, "backend")
    result = exec_in(engine, backend, ("python", "manage.py", "migrate", "--check", "--no-input"))
    if result.exit_code is None:
        # No exit code is no verdict: saying "unapplied migrations" here would mislead.
        raise RecoverctlError(
            "manage.py migrate --check did not report how it ended",
            "recoverctl logs backend; then run doctor again",
            code=ErrorCode.COMMAND_FAILED,
        )
    if result.exit_code != 0:
        return Finding(
            FAIL,
            "unapplied migrations (manage.py migrate --check)",
            "recoverctl restart backend (it migrates on start), then run doctor again",
        )
    return Finding(OK, "no unapplied migration")


@check("app.admin", Group.STACK, needs=[Need.APP_PORT])
def _admin(ctx: Context) -> Finding:
    """The admin login page loads on the published port."""
    port = ctx.port()
    reply = http.get(port, "/admin/login/")
    if reply.status == 200:
        return Finding(OK, f"http://127.0.0.1:{port}/admin/login/ loads")
    if reply.status == 400:
        return Finding(
            FAIL,
            "HTTP 400 from /admin/login/: 127.0.0.1 is not an allowed host",
            f"Add 127.0.0.1 to DJANGO_ALLOWED_HOSTS in {ctx.settings.env_rel}, then recoverctl up",
        )
    return Finding(
        FAIL,
        f"/admin/login/ answered {reply.status or _one_line(reply.body)[:80]}",
        "recoverctl logs backend",
    )


@check("app.key_check", Group.STACK, needs=[Need.APP_PORT])
def _key_check_endpoint(ctx: Context) -> Finding:
    """The vault's API answers /api/key-check with JSON."""
    port = ctx.port()
    reply = http.get(port, "/api/key-check")
    # Without a session the vault must refuse with JSON: that proves the route and the app.
    if reply.status in (200, 401, 403, 404) and reply.body.lstrip().startswith("{"):
        return Finding(OK, f"/api/key-check answers ({reply.status} without a session)")
    return Finding(
        FAIL,
        f"/api/key-check answered {reply.status or _one_line(reply.body)[:80]}",
        "recoverctl logs backend",
    )


# --- backups -----------------------------------------------------------------------------


@check("backups.rpo", Group.BACKUPS)
def _rpo(ctx: Context) -> Finding:
    """The newest verified backup is younger than rpo."""
    return rpo_check(ctx.listing(), in_units(ctx.settings.rpo, HOUR), ctx.settings.stack)


def rpo_check(
    listing: catalog.Listing, rpo_hours: float, stack: str, now: datetime | None = None
) -> Finding:
    flag = " --prod" if stack == "prod" else ""
    good = [e for e in listing.entries if e.state in ("quick ok", "deep ok")]
    if not good:
        return Finding(
            FAIL,
            f"no verified {stack} backup in {listing.folder}",
            f"recoverctl backup{flag} && recoverctl verify latest --deep{flag}",
        )
    age_h = ((now or datetime.now(UTC)) - good[0].created).total_seconds() / 3600
    if age_h > rpo_hours:
        return Finding(
            FAIL,
            f"newest verified backup is {age_h:.0f} h old, over the {rpo_hours:g} h allowed",
            f"recoverctl backup{flag} && recoverctl verify latest --deep{flag}; schedule the "
            f"routine: recoverctl schedule install{flag}",
        )
    return Finding(OK, f"newest verified backup {good[0].path.name} is {age_h:.1f} h old")


@check("backups.verified", Group.BACKUPS)
def _newest_verified(ctx: Context) -> Finding | None:
    """The newest backup was verified, and passed."""
    listing = ctx.listing()
    if not listing.entries:
        return None  # no backup at all: backups.rpo says so
    newest = listing.entries[0]
    if newest.state == "never":
        return Finding(
            WARN,
            f"the newest backup {newest.path.name} was never verified",
            f"recoverctl verify {newest.path.name} --deep",
        )
    if newest.state == "failed":
        return Finding(
            FAIL,
            f"the newest backup {newest.path.name} failed verification",
            "Make a new backup and verify it: recoverctl backup && recoverctl verify latest --deep",
        )
    return Finding(OK, f"the newest backup {newest.path.name}: {newest.state}")


@check("backups.space", Group.BACKUPS, needs=[Need.DB])
def _space(ctx: Context) -> Finding:
    """The backups disk has room for twice the database."""
    folder = ctx.settings.backup_dir
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    size = int(ctx.db().query(pg.DB_SIZE_SQL).strip() or 0)
    return space_check(free, size, folder)


def space_check(free: int, size: int, folder: Path) -> Finding:
    mib = 1024 * 1024
    text = f"{free // mib} MiB free in {folder}, database {size // mib} MiB"
    if free < size:
        return Finding(FAIL, text, "Free space there or set backup_dir to a larger disk")
    if free < size * SPACE_MARGIN + 100 * mib:
        return Finding(WARN, text, "Free space soon: a backup needs up to the database's size")
    return Finding(OK, text)


@check("backups.schedule", Group.BACKUPS)
def _schedule(ctx: Context) -> Finding:
    """The routine is scheduled: a systemd timer or a cron entry (recoverctl schedule
    install)."""
    from recoverctl.services.routine import scheduled

    flag = " --prod" if ctx.settings.stack == "prod" else ""
    where = scheduled(ctx.settings, ctx.session.project)
    if where is None:
        return Finding(
            WARN,
            f"no scheduled routine for the {ctx.settings.stack} stack: backups run only by hand",
            f"recoverctl schedule install{flag}",
        )
    return Finding(OK, f"routine scheduled: {where}")


@check("backups.routine", Group.BACKUPS)
def _routine(ctx: Context) -> Finding | None:
    """The last routine ended well, within rpo."""
    from recoverctl.services.routine import load_record

    record = load_record(ctx.settings)
    if record is None:
        return None  # never ran: backups.schedule says whether one will
    flag = " --prod" if ctx.settings.stack == "prod" else ""
    age_h = (datetime.now(UTC) - record.finished_at).total_seconds() / 3600
    when = f"{age_h:.1f} h ago"
    if not record.ok:
        return Finding(
            FAIL,
            f"the last routine failed {when} ({record.error_code}): {record.message}"
            .replace("\n", " "),
            f"recoverctl schedule status{flag}; run it by hand to see: recoverctl routine{flag}",
        )
    if age_h > in_units(ctx.settings.rpo, HOUR):
        return Finding(
            WARN,
            f"the last routine ended {when}, over the {in_units(ctx.settings.rpo, HOUR):g} h allowed",
            f"Is the timer running? recoverctl schedule status{flag}",
        )
    return Finding(OK, f"the last routine ended well {when} ({record.backup})")


@check("backups.drill", Group.BACKUPS)
def _drill(ctx: Context) -> Finding:
    """A recovery drill passed within drill_max_age (default 30d), and the last one did not
    fail."""
    s = ctx.settings
    max_age = in_units(s.drill_max_age, DAY)
    return drill_freshness(catalog.drill_records(s), max_age, s.stack, datetime.now(UTC))


@check("backups.rto", Group.BACKUPS)
def _rto(ctx: Context) -> Finding | None:
    """When rto is set: the last drill brought the vault back within it."""
    return drill_rto(catalog.drill_records(ctx.settings), in_units(ctx.settings.rto, MINUTE))


# --- targets -----------------------------------------------------------------------------


@check("targets.configured", Group.TARGETS)
def _targets_configured(ctx: Context) -> Finding:
    """At least one off-site target is configured: the day this disk dies, only they remain."""
    names = sorted(ctx.settings.targets)
    if not names:
        return Finding(
            WARN,
            "no off-site target: every backup is on this server",
            f"Add [encryption] and a [targets.NAME] table to {config_hint()} "
            "(README: Off-site copies)",
        )
    return Finding(OK, f"{len(names)} configured: {', '.join(names)}")


def _per_target(
    ctx: Context, judge: Callable[[Context, str], Finding | None]
) -> dict[str, Finding]:
    rows: dict[str, Finding] = {}
    for name in sorted(ctx.settings.targets):
        try:
            found = judge(ctx, name)
        except RecoverctlError as exc:
            found = Finding(FAIL, _one_line(exc.message), _one_line(exc.hint or ""))
        if found is not None:
            rows[name] = found
    return rows


def _listing_or_none(ctx: Context, name: str) -> offsite.TargetListing | None:
    try:
        return ctx.target_listing(name)
    except RecoverctlError:
        return None  # targets.reachable.NAME says why, once


@check("targets.reachable", Group.TARGETS, each="target")
def _targets_reachable(ctx: Context) -> dict[str, Finding]:
    """Each target answers: reachable, credentials and host key accepted, its folder or
    bucket there."""

    def judge(ctx: Context, name: str) -> Finding:
        found = ctx.target_listing(name)
        complete = len(found.listing.complete)
        return Finding(OK, f"{found.location} answers; {complete} complete backups there")

    return _per_target(ctx, judge)


@check("targets.encryption", Group.TARGETS, each="target")
def _targets_encryption(ctx: Context) -> dict[str, Finding]:
    """Each target's copies are sealed with age to usable recipients; encryption = "none"
    warns."""

    def judge(ctx: Context, name: str) -> Finding:
        if ctx.settings.targets[name].encryption == "none":
            return Finding(
                WARN,
                'encryption = "none": its copies are stored in clear',
                f'Remove encryption = "none" from [targets.{name}]; set [encryption] recipients',
            )
        from recoverctl.adapters import seal

        recipients = seal.load_recipients(ctx.settings.encryption)
        return Finding(OK, f"sealed with age to {len(recipients)} recipient(s)")

    return _per_target(ctx, judge)


@check("targets.newest", Group.TARGETS, each="target")
def _targets_newest(ctx: Context) -> dict[str, Finding]:
    """Each target holds a complete copy of this stack's newest local backup."""
    entries = [e for e in ctx.listing().entries if e.stack == ctx.settings.stack]
    if not entries:
        return {}  # no local backup: backups.rpo says so
    newest = entries[0].path.name
    flag = _prod_flag(ctx.settings)

    def judge(ctx: Context, name: str) -> Finding | None:
        found = _listing_or_none(ctx, name)
        if found is None:
            return None
        copy = found.listing.find(newest)
        if copy is not None and copy.complete:
            return Finding(OK, f"{newest} is there, complete")
        state = f"only an incomplete copy ({'; '.join(copy.problems)})" if copy else "no copy"
        return Finding(
            FAIL,
            f"the newest local backup {newest}: {state}",
            f"recoverctl push latest --target {name}{flag}",
        )

    return _per_target(ctx, judge)


@check("targets.rpo", Group.TARGETS, each="target")
def _targets_rpo(ctx: Context) -> dict[str, Finding]:
    """Each target's newest complete copy is younger than rpo."""
    rpo = in_units(ctx.settings.rpo, HOUR)
    now = datetime.now(UTC)
    flag = _prod_flag(ctx.settings)

    def judge(ctx: Context, name: str) -> Finding | None:
        found = _listing_or_none(ctx, name)
        if found is None:
            return None
        complete = [b for b in found.listing.complete if b.created_at is not None]
        if not complete:
            return Finding(
                FAIL,
                "no complete copy there",
                f"recoverctl push --missing --target {name}{flag}",
            )
        newest = max(complete, key=lambda b: b.created_at or now)
        assert newest.created_at is not None
        hours = (now - newest.created_at).total_seconds() / 3600
        if hours > rpo:
            return Finding(
                FAIL,
                f"newest complete copy {newest.backup} is {hours:.0f} h old, over the "
                f"{rpo:g} h allowed",
                f"recoverctl backup{flag} (it pushes to every target); schedule it",
            )
        return Finding(OK, f"newest complete copy {newest.backup} is {hours:.1f} h old")

    return _per_target(ctx, judge)


REGISTRY: tuple[CheckSpec, ...] = tuple(_declared)
