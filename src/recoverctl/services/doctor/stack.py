"""doctor's stack group: the engine, the compose file, each service, the database, and the
app on its published port."""

from __future__ import annotations

from recoverctl.adapters import http, process
from recoverctl.adapters.pgexec import Db, exec_in
from recoverctl.core import commands, pg
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.core.stack import ServiceStatus, describe_problem
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    Need,
    one_line,
    prod_flag,
)

checks = GroupChecks(Group.STACK)


@checks.check("engine", needs=[Need.ENGINE], gates=Need.ENGINE)
def _engine(ctx: Context) -> Finding:
    """The Docker engine answers."""
    version = ctx.engine().version().get("Version", "?")
    return Finding(OK, f"Docker engine {version} answers")


@checks.check("compose.valid", needs=[Need.ENV_FILE])
def _compose_valid(ctx: Context) -> Finding:
    """`docker compose config` accepts the compose file with the env file."""
    s = ctx.settings
    done = process.run(
        commands.compose_config_check(ctx.ref().target()),
        check=False,
        timeout=60,
        secrets=ctx.session.secrets(),  # compose quotes the env file's lines in its errors
    )
    if done.returncode != 0:
        return Finding(
            FAIL,
            one_line(done.stderr_tail)[:300] or "docker compose config failed",
            f"Fix {s.compose_rel} or {s.env_rel}",
        )
    return Finding(OK, f"{s.compose_rel} with {s.env_rel} is valid")


@checks.check("service", needs=[Need.ENGINE], each="service")
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
        f"recoverctl up{prod_flag(ctx.settings)}; recoverctl logs {s.service}",
    )


@checks.check("db.answers", needs=[Need.DB])
def _db_answers(ctx: Context) -> Finding:
    """PostgreSQL answers a query."""
    version = ctx.db().query(pg.SERVER_VERSION_SQL).strip()
    return Finding(OK, f"PostgreSQL {version} answers")


@checks.check("db.not_empty", needs=[Need.DB])
def _db_not_empty(ctx: Context) -> Finding:
    """The database has tables and at least one user."""
    return not_empty(ctx.db())


def not_empty(db: Db) -> Finding:
    """db.not_empty's verdict on any server holding the vault's database (a restored copy's
    too, which verify --pitr --deep judges)."""
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


@checks.check("db.leftovers", needs=[Need.DB])
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


@checks.check("db.migrations", needs=[Need.ENGINE])
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


@checks.check("app.admin", needs=[Need.APP_PORT])
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
        f"/admin/login/ answered {reply.status or one_line(reply.body)[:80]}",
        "recoverctl logs backend",
    )


@checks.check("app.key_check", needs=[Need.APP_PORT])
def _key_check_endpoint(ctx: Context) -> Finding:
    """The vault's API answers /api/key-check with JSON."""
    port = ctx.port()
    reply = http.get(port, "/api/key-check")
    # Without a session the vault must refuse with JSON: that proves the route and the app.
    if reply.status in (200, 401, 403, 404) and reply.body.lstrip().startswith("{"):
        return Finding(OK, f"/api/key-check answers ({reply.status} without a session)")
    return Finding(
        FAIL,
        f"/api/key-check answered {reply.status or one_line(reply.body)[:80]}",
        "recoverctl logs backend",
    )
