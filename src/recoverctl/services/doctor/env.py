"""doctor's env group: the stack's env file, rule by rule (core/envcheck.py), and whether
the running containers use it."""

from __future__ import annotations

from recoverctl.core import envcheck
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    Need,
    Unavailable,
)

checks = GroupChecks(Group.ENV)


@checks.check("env.file", gates=Need.ENV_FILE)
def _env_file(ctx: Context) -> Finding:
    """The stack's env file (.env, or .env.production for --prod) exists."""
    try:
        env = ctx.env()
    except Unavailable as missing:
        return Finding(FAIL, missing.evidence, missing.fix)
    return Finding(OK, f"{env.source} exists")


@checks.check("env.mode", needs=[Need.ENV_FILE])
def _env_mode(ctx: Context) -> Finding:
    """The env file is mode 600: only its owner can read the database password and
    Django's key."""
    env = ctx.env()
    return envcheck.check_env_mode(env.mode, env.source)


@checks.check("env.line_endings", needs=[Need.ENV_FILE])
def _line_endings(ctx: Context) -> Finding:
    """LF line endings: a stray carriage return would end up in values."""
    env = ctx.env()
    return envcheck.check_line_endings(env.text, env.source)


@checks.check("env.syntax", needs=[Need.ENV_FILE])
def _syntax(ctx: Context) -> Finding:
    """Every line is NAME=value, a comment or blank."""
    env = ctx.env()
    return envcheck.check_syntax(env.text, env.source)


@checks.check("env.duplicates", needs=[Need.ENV_FILE])
def _duplicates(ctx: Context) -> Finding:
    """No variable is set twice."""
    env = ctx.env()
    return envcheck.check_duplicates(env.text, env.source)


@checks.check("env.required", needs=[Need.ENV_FILE])
def _required(ctx: Context) -> Finding:
    """Every variable the backend requires is set."""
    env = ctx.env()
    return envcheck.check_required(env.values, env.stack, env.source)


@checks.check("env.placeholders", needs=[Need.ENV_FILE])
def _placeholders(ctx: Context) -> Finding:
    """No .env.example placeholder or copied example secret is left."""
    env = ctx.env()
    return envcheck.check_placeholders(env.values, env.example, env.stack, env.source)


@checks.check("env.secret_key", needs=[Need.ENV_FILE])
def _secret_key(ctx: Context) -> Finding:
    """DJANGO_SECRET_KEY is long and random enough for the backend to accept it."""
    env = ctx.env()
    return envcheck.check_secret_key(env.values, env.stack, env.source)


@checks.check("env.debug", needs=[Need.ENV_FILE])
def _debug(ctx: Context) -> Finding:
    """DJANGO_DEBUG is a boolean, and off in prod."""
    env = ctx.env()
    return envcheck.check_debug(env.values, env.stack, env.source)


@checks.check("env.allowed_hosts", needs=[Need.ENV_FILE])
def _allowed_hosts(ctx: Context) -> Finding:
    """DJANGO_ALLOWED_HOSTS allows the published address."""
    env = ctx.env()
    return envcheck.check_allowed_hosts(env.values, "127.0.0.1", ctx.env_port(), env.source)


@checks.check("env.csrf_origins", needs=[Need.ENV_FILE])
def _csrf_origins(ctx: Context) -> Finding:
    """DJANGO_CSRF_TRUSTED_ORIGINS trusts the published address, scheme and port."""
    env = ctx.env()
    return envcheck.check_csrf_origins(env.values, "127.0.0.1", ctx.env_port(), env.source)


@checks.check("env.cors_origins", needs=[Need.ENV_FILE])
def _cors_origins(ctx: Context) -> Finding | None:
    """Dev only: DJANGO_CORS_ALLOWED_ORIGINS lets the dev front end call the API."""
    env = ctx.env()
    if env.stack != "dev":
        return None  # prod serves the front end from its own origin
    return envcheck.check_cors_origins(env.values, env.source)


@checks.check("env.key_location", needs=[Need.ENV_FILE])
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


@checks.check("env.running", needs=[Need.ENV_FILE, Need.ENGINE])
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
