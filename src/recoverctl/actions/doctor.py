"""doctor: every check runs, each ok / warn / fail with one line of evidence and one of fix.

Secrets are never printed, not even in part: checks name variables and compare values,
they do not show them.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recoverctl.services import catalog
from recoverctl.services.session import StackRef
from recoverctl.services.stack import status
from recoverctl.adapters import git, http, process, vault
from recoverctl.adapters.engine import Engine
from recoverctl.adapters.pgexec import Db, exec_in
from recoverctl.core import commands, envcheck, pg
from recoverctl.core.checks import FAIL, OK, WARN, Check, worst
from recoverctl.core.keyfile import KeyFile, KeyFileError, parse_keyfile
from recoverctl.core.stack import StackStatus, describe_problem
from recoverctl.errors import RecoverctlError
from recoverctl.settings import Settings, config_path

GROUPS = ("env", "git", "key", "stack", "backups")
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


@dataclass
class _Context:
    """What several checks need, fetched once; a failure is remembered, not re-raised."""

    settings: Settings
    ref: StackRef
    _cache: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            try:
                self._cache[name] = make()
            except RecoverctlError as exc:
                self._cache[name] = exc
        value = self._cache[name]
        if isinstance(value, RecoverctlError):
            raise value
        return value

    def engine(self) -> Engine:
        engine: Engine = self.get("engine", Engine.connect)
        return engine

    def status(self) -> StackStatus:
        result: StackStatus = self.get("status", lambda: status(self.engine(), self.ref))
        return result

    def db(self) -> Db:
        def make() -> Db:
            return Db.attach(self.engine(), self.engine().service_container(self.ref.project, "db"))

        db: Db = self.get("db", make)
        return db

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get(
            "report", lambda: vault.report(self.engine(), self.ref.project)
        )
        return data

    def port(self) -> int | None:
        try:
            backend = next(s for s in self.status().services if s.service == "backend")
        except (RecoverctlError, StopIteration):
            return None
        return http.published_port(backend.ports)


def _guard(name: str, check: Callable[[], Check | Iterable[Check]]) -> list[Check]:
    """One failing check never stops the others: its error becomes its row."""
    try:
        result = check()
    except RecoverctlError as exc:
        return [Check(name, FAIL, _one_line(exc.message), _one_line(exc.hint or ""))]
    return [result] if isinstance(result, Check) else list(result)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def doctor(settings: Settings, groups: Iterable[str] = GROUPS) -> DoctorReport:
    started = time.monotonic()
    ref = StackRef.load(settings)
    ctx = _Context(settings, ref)
    checks: list[Check] = []
    for group in groups:
        checks.extend(_GROUPS[group](ctx))
    return DoctorReport(ref.project, settings.stack, tuple(checks), time.monotonic() - started)


# --- env ---------------------------------------------------------------------------------


def env_checks(ctx: _Context) -> list[Check]:
    s = ctx.settings
    source = s.env_rel
    if not s.env_file.is_file():
        return [
            Check(
                "env.file",
                FAIL,
                f"{source} is missing",
                f"cp .env.example {source} && chmod 600 {source}, then set every change-me value",
            )
        ]
    from dotenv import dotenv_values

    # Bytes, decoded by hand: read_text() would turn CRLF into LF and hide it from the check.
    text = s.env_file.read_bytes().decode("utf-8", errors="replace")
    values = dotenv_values(stream=io.StringIO(text))
    example_path = s.project_dir / ".env.example"
    example = dotenv_values(example_path) if example_path.is_file() else {}
    port = ctx.port()
    published = str(port) if port else (values.get("VAULT_HTTP_PORT") or DEFAULT_PORTS[s.stack])
    checks = [envcheck.check_env_mode(s.env_file.stat().st_mode, source)]
    checks += envcheck.check_env(
        values, text, stack=s.stack, example=example, port=published, source=source
    )
    checks += _guard("env.key_location", lambda: _key_not_in_env(values, source))
    checks += _guard("env.running", lambda: _running_matches(ctx, values, source))
    return checks


def _key_not_in_env(values: dict[str, str | None], source: str) -> Check:
    bad = sorted(
        k
        for k, v in values.items()
        if k.startswith("RECOVERCTL_KEY") or (v or "").endswith(".zkkey.json")
    )
    if bad:
        return Check(
            "env.key_location",
            FAIL,
            f"{source} names the key backup ({', '.join(bad)})",
            "Remove it: the key's location belongs in ~/.config/recoverctl/config.toml, never in .env",
        )
    return Check("env.key_location", OK, f"{source} does not point at the key backup")


def _running_matches(ctx: _Context, values: dict[str, str | None], source: str) -> Check:
    """The playbook's 'restart the containers after changing .env', checked."""
    engine = ctx.engine()
    seen: dict[str, dict[str, str]] = {}
    for service in ("db", "backend"):
        found = engine.containers(ctx.ref.project, service)
        if not found:
            return Check("env.running", WARN, f"{service} has no container: nothing to compare")
        env = found[0].attrs["Config"].get("Env") or []
        seen[service] = dict(item.split("=", 1) for item in env if "=" in item)
    stale = []
    for name in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
        wanted = values.get(name) or ""
        differs = [svc for svc, env in seen.items() if env.get(name, "") != wanted]
        if differs:
            stale.append(f"{name} ({', '.join(differs)})")
    if stale:
        return Check(
            "env.running",
            FAIL,
            f"running containers use other values than {source}: {'; '.join(stale)}",
            "recoverctl up (recreates them); a changed POSTGRES_PASSWORD also needs ALTER ROLE",
        )
    return Check("env.running", OK, f"db and backend run with {source}'s POSTGRES_* values")


# --- git ---------------------------------------------------------------------------------


def git_checks(ctx: _Context) -> list[Check]:
    project = ctx.settings.project_dir
    repo = git.toplevel(project)
    if repo is None:
        return [
            Check(
                "git.repo",
                WARN,
                f"{project} is not a git checkout",
                "Clone the project from git, as the playbook's quick recovery does",
            )
        ]
    rel = project.relative_to(repo) if project != repo else Path()
    sensitive = [
        str(rel / ".env"), str(rel / ".env.production"), str(rel / "backups") + "/",
        str(rel / "key.zkkey.json"), str(rel / "backups" / "backup_x.dump"),
        str(rel / "backups" / "backup_x.sql"),
    ]  # fmt: skip
    checks: list[Check] = []
    checks += _guard("git.ignored", lambda: _ignored(repo, sensitive))
    checks += _guard("git.tracked", lambda: _tracked(repo, rel))
    checks += _guard("git.history", lambda: _history(repo, rel))
    checks += _guard("git.gitignore", lambda: _gitignore(repo))
    return checks


def _ignored(repo: Path, paths: list[str]) -> Check:
    covered = git.ignored(repo, paths)
    missing = [p for p in paths if p not in covered and p.rstrip("/") not in covered]
    if missing:
        return Check(
            "git.ignored",
            FAIL,
            "not ignored by git: " + ", ".join(missing),
            "Add the playbook's entries to .gitignore (.env, .env.production, backups/, **/*.zkkey.json)",
        )
    return Check("git.ignored", OK, "env files, key backups and backups/ are ignored")


def _pathspecs(rel: Path) -> list[str]:
    base = "" if str(rel) == "." else f"{rel}/"
    return [
        f"{base}.env", f"{base}.env.production", f"{base}backups",
        ":(glob)**/*.zkkey.json", f":(glob){base}**/*.dump", f":(glob){base}backups/**",
    ]  # fmt: skip


def _tracked(repo: Path, rel: Path) -> Check:
    found = git.tracked(repo, _pathspecs(rel))
    if found:
        return Check(
            "git.tracked",
            FAIL,
            "tracked by git: " + ", ".join(found[:5]),
            "git rm --cached those files and commit; then change every secret they held",
        )
    return Check("git.tracked", OK, "no env file, key backup or backup is tracked")


def _history(repo: Path, rel: Path) -> Check:
    found = git.added_in_history(repo, _pathspecs(rel))
    if found:
        shown = ", ".join(f"{path} in {commit}" for commit, path in found[:5])
        return Check(
            "git.history",
            FAIL,
            f"committed in the past: {shown}",
            "Change every secret they held; rewrite history (git filter-repo) if the repo is shared",
        )
    return Check("git.history", OK, "no env file, key backup or backup was ever committed")


def _gitignore(repo: Path) -> Check:
    path = repo / ".gitignore"
    lines = set(path.read_text().splitlines()) if path.is_file() else set()
    missing = [e for e in GITIGNORE_ENTRIES if e not in lines]
    if missing:
        return Check(
            "git.gitignore",
            WARN,
            ".gitignore lacks " + ", ".join(missing),
            "Add those lines to .gitignore (the playbook's recommended list)",
        )
    return Check("git.gitignore", OK, ".gitignore has the playbook's recommended entries")


# --- key backup --------------------------------------------------------------------------


def key_checks(ctx: _Context) -> list[Check]:
    path = ctx.settings.key_file
    if path is None:
        return _guard("key.configured", lambda: _no_key_configured(ctx))
    checks = [Check("key.configured", OK, f"key backup configured at {path}")]
    if not path.is_file():
        checks.append(
            Check(
                "key.exists",
                FAIL,
                f"{path} does not exist",
                "Export the key again from the vault's Key backup page in the browser, save it there",
            )
        )
        return checks
    checks.append(_key_place(ctx.settings, path))
    checks.append(_key_mode(path))
    try:
        kf = parse_keyfile(path.read_text(encoding="utf-8", errors="replace"))
    except KeyFileError as exc:
        checks.append(
            Check("key.valid", FAIL, "; ".join(exc.problems)[:300], _one_line(exc.hint or ""))
        )
        return checks
    checks.append(
        Check("key.valid", OK, f"zkkey v1, RSA-{kf.modulus_length}, {kf.fingerprint[:19]}…")
    )
    checks += _guard("key.registered", lambda: _registered(ctx, kf))
    return checks


def _no_key_configured(ctx: _Context) -> Check:
    total = int(ctx.report().get("secrets_total", 0))
    where = f"key_file in {config_path_hint()}"
    if total:
        return Check(
            "key.configured",
            FAIL,
            f"no key backup configured while the vault holds {total} secrets: unreadable after a crash",
            f"Export the key (Key backup -> Export) outside the repo, then set {where}",
        )
    return Check(
        "key.configured",
        WARN,
        "no key backup configured (the vault holds no secret yet)",
        f"Set {where}",
    )


def config_path_hint() -> str:
    import os

    return str(config_path(os.environ))


def _key_place(settings: Settings, path: Path) -> Check:
    real = path.resolve()
    places = {
        "the repository": settings.project_dir.resolve(),
        "the backups folder": settings.backup_dir.resolve(),
        "the docker build context": (settings.project_dir / "vault").resolve(),
    }
    inside = [name for name, folder in places.items() if real == folder or folder in real.parents]
    if inside:
        return Check(
            "key.location",
            FAIL,
            f"{path} lies inside {inside[0]}",
            "Move it outside the project (and out of backups/), then update key_file",
        )
    return Check("key.location", OK, "outside the repository, the build context and backups/")


def _key_mode(path: Path) -> Check:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Check(
            "key.mode", FAIL, f"{path} is mode {oct(mode)}: others can read it", f"chmod 600 {path}"
        )
    return Check("key.mode", OK, f"mode {oct(mode)}")


def _registered(ctx: _Context, kf: KeyFile) -> Check:
    users = [u for u in ctx.report().get("users", []) if u.get("fingerprint") == kf.fingerprint]
    if not users:
        return Check(
            "key.registered",
            FAIL,
            "the key backup's fingerprint belongs to no vault user",
            "This is another key (or another vault's): find the export that matches the vault",
        )
    u = users[0]
    return Check(
        "key.registered", OK, f"matches {u['username']}'s registered key ({u['secrets']} secrets)"
    )


# --- engine and stack --------------------------------------------------------------------


def stack_checks(ctx: _Context) -> list[Check]:
    try:
        engine = ctx.engine()
    except RecoverctlError as exc:
        return [Check("engine", FAIL, _one_line(exc.message), _one_line(exc.hint or ""))]
    checks = [
        Check("engine", OK, f"Docker engine {engine.client.version().get('Version', '?')} answers")
    ]
    checks += _guard("compose.valid", lambda: _compose_valid(ctx))
    current = ctx.status()
    for s in current.services:
        if s.ready:
            checks.append(
                Check(f"service.{s.service}", OK, f"{s.state}, {s.health or 'no healthcheck'}")
            )
        elif s.state == "running" and s.health == "starting":
            checks.append(
                Check(
                    f"service.{s.service}",
                    WARN,
                    f"{s.service} is running, still starting",
                    "Run doctor again in a few seconds",
                )
            )
        else:
            checks.append(
                Check(
                    f"service.{s.service}",
                    FAIL,
                    describe_problem(s),
                    f"recoverctl up{' --prod' if ctx.settings.stack == 'prod' else ''}; "
                    f"recoverctl logs {s.service}",
                )
            )
    checks += _guard("db.answers", lambda: _db_answers(ctx))
    checks += _guard("db.not_empty", lambda: _db_not_empty(ctx))
    checks += _guard("db.leftovers", lambda: _leftover_databases(ctx))
    checks += _guard("db.migrations", lambda: _migrations(ctx))
    checks += _guard("app.admin", lambda: _admin(ctx))
    checks += _guard("app.key_check", lambda: _key_check_endpoint(ctx))
    return checks


def _compose_valid(ctx: _Context) -> Check:
    s = ctx.settings
    target = ctx.ref.target()
    if not s.env_file.is_file():
        return Check("compose.valid", WARN, f"not checked: {s.env_rel} is missing")
    done = process.run(commands.compose_config_check(target), check=False, timeout=60)
    if done.returncode != 0:
        return Check(
            "compose.valid",
            FAIL,
            _one_line(done.stderr_tail)[:300] or "docker compose config failed",
            f"Fix {s.compose_rel} or {s.env_rel}",
        )
    return Check("compose.valid", OK, f"{s.compose_rel} with {s.env_rel} is valid")


def _db_answers(ctx: _Context) -> Check:
    version = ctx.db().query(pg.SERVER_VERSION_SQL).strip()
    return Check("db.answers", OK, f"PostgreSQL {version} answers")


def _db_not_empty(ctx: _Context) -> Check:
    db = ctx.db()
    tables = db.tables()
    if not tables:
        return Check(
            "db.not_empty",
            FAIL,
            f"database {db.database} has no tables",
            "Restore the newest backup: recoverctl restore latest (or recoverctl recover)",
        )
    users = (
        "public.auth_user" in tables and db.query("SELECT count(*) FROM public.auth_user").strip()
    )
    if not users or users == "0":
        return Check(
            "db.not_empty",
            WARN,
            f"database {db.database} has {len(tables)} tables but no user",
            "If it should hold data, restore: recoverctl restore latest",
        )
    return Check("db.not_empty", OK, f"{len(tables)} tables, {users} users")


def _leftover_databases(ctx: _Context) -> Check:
    from recoverctl.services.load import leftovers

    found = leftovers(ctx.db())
    if found:
        return Check(
            "db.leftovers",
            WARN,
            "left by an interrupted restore or verify: " + ", ".join(found[:3]),
            "Once you no longer need them: DROP DATABASE each (they hold copies of the data)",
        )
    return Check("db.leftovers", OK, "no database left behind by an interrupted run")


def _migrations(ctx: _Context) -> Check:
    engine = ctx.engine()
    backend = engine.service_container(ctx.ref.project, "backend")
    result = exec_in(engine, backend, ("python", "manage.py", "migrate", "--check", "--no-input"))
    if result.exit_code != 0:
        return Check(
            "db.migrations",
            FAIL,
            "unapplied migrations (manage.py migrate --check)",
            "recoverctl restart backend (it migrates on start), then run doctor again",
        )
    return Check("db.migrations", OK, "no unapplied migration")


def _port_or_fail(ctx: _Context) -> int:
    port = ctx.port()
    if port is None:
        raise RecoverctlError(
            "the backend publishes no port on 127.0.0.1",
            "Check its ports: in the compose file; recoverctl up",
        )
    return port


def _admin(ctx: _Context) -> Check:
    port = _port_or_fail(ctx)
    reply = http.get(port, "/admin/login/")
    if reply.status == 200:
        return Check("app.admin", OK, f"http://127.0.0.1:{port}/admin/login/ loads")
    if reply.status == 400:
        return Check(
            "app.admin",
            FAIL,
            "HTTP 400 from /admin/login/: 127.0.0.1 is not an allowed host",
            f"Add 127.0.0.1 to DJANGO_ALLOWED_HOSTS in {ctx.settings.env_rel}, then recoverctl up",
        )
    return Check(
        "app.admin",
        FAIL,
        f"/admin/login/ answered {reply.status or _one_line(reply.body)[:80]}",
        "recoverctl logs backend",
    )


def _key_check_endpoint(ctx: _Context) -> Check:
    port = _port_or_fail(ctx)
    reply = http.get(port, "/api/key-check")
    # Without a session the vault must refuse with JSON: that proves the route and the app.
    if reply.status in (200, 401, 403, 404) and reply.body.lstrip().startswith("{"):
        return Check(
            "app.key_check", OK, f"/api/key-check answers ({reply.status} without a session)"
        )
    return Check(
        "app.key_check",
        FAIL,
        f"/api/key-check answered {reply.status or _one_line(reply.body)[:80]}",
        "recoverctl logs backend",
    )


# --- backups -----------------------------------------------------------------------------


def backup_checks(ctx: _Context) -> list[Check]:
    listing = catalog.list_backups(ctx.settings)
    checks: list[Check] = []
    checks += _guard(
        "backups.rpo", lambda: rpo_check(listing, ctx.settings.rpo_hours, ctx.settings.stack)
    )
    newest = listing.entries[0] if listing.entries else None
    if newest is not None and newest.state == "never":
        checks.append(
            Check(
                "backups.verified",
                WARN,
                f"the newest backup {newest.path.name} was never verified",
                f"recoverctl verify {newest.path.name} --deep",
            )
        )
    elif newest is not None and newest.state == "failed":
        checks.append(
            Check(
                "backups.verified",
                FAIL,
                f"the newest backup {newest.path.name} failed verification",
                "Make a new backup and verify it: recoverctl backup && recoverctl verify latest --deep",
            )
        )
    checks += _guard("backups.space", lambda: _space(ctx))
    return checks


def rpo_check(
    listing: catalog.Listing, rpo_hours: float, stack: str, now: datetime | None = None
) -> Check:
    flag = " --prod" if stack == "prod" else ""
    good = [e for e in listing.entries if e.state in ("quick ok", "deep ok")]
    if not good:
        return Check(
            "backups.rpo",
            FAIL,
            f"no verified {stack} backup in {listing.folder}",
            f"recoverctl backup{flag} && recoverctl verify latest --deep{flag}",
        )
    age_h = ((now or datetime.now(UTC)) - good[0].created).total_seconds() / 3600
    if age_h > rpo_hours:
        return Check(
            "backups.rpo",
            FAIL,
            f"newest verified backup is {age_h:.0f} h old, over the {rpo_hours:g} h allowed",
            f"recoverctl backup{flag} && recoverctl verify latest --deep{flag}; schedule it",
        )
    return Check(
        "backups.rpo", OK, f"newest verified backup {good[0].path.name} is {age_h:.1f} h old"
    )


def _space(ctx: _Context) -> Check:
    folder = ctx.settings.backup_dir
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    size = int(ctx.db().query(pg.DB_SIZE_SQL).strip() or 0)
    return space_check(free, size, folder)


def space_check(free: int, size: int, folder: Path) -> Check:
    mib = 1024 * 1024
    text = f"{free // mib} MiB free in {folder}, database {size // mib} MiB"
    if free < size:
        return Check(
            "backups.space", FAIL, text, "Free space there or set backup_dir to a larger disk"
        )
    if free < size * SPACE_MARGIN + 100 * mib:
        return Check(
            "backups.space", WARN, text, "Free space soon: a backup needs up to the database's size"
        )
    return Check("backups.space", OK, text)


_GROUPS: dict[str, Callable[[_Context], list[Check]]] = {
    "env": env_checks,
    "git": git_checks,
    "key": key_checks,
    "stack": stack_checks,
    "backups": backup_checks,
}
