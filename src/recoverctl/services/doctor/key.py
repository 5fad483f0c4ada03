"""doctor's key group: the key backup is configured, there, private, outside the repository,
well-formed, and a vault user's registered key."""

from __future__ import annotations

from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.core.keyfile import KeyFileError
from recoverctl.errors import RecoverctlError
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    Need,
    Unavailable,
    config_hint,
    one_line,
)

checks = GroupChecks(Group.KEY)


@checks.check("key.configured", gates=Need.KEY_FILE)
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
            + one_line(exc.message),
            f"Export the key (Key backup -> Export) outside the repo, then set {where}",
        )
    if total:
        return Finding(
            FAIL,
            f"no key backup configured while the vault holds {total} secrets: unreadable after a crash",
            f"Export the key (Key backup -> Export) outside the repo, then set {where}",
        )
    return Finding(WARN, "no key backup configured (the vault holds no secret yet)", f"Set {where}")


@checks.check("key.exists", gates=Need.KEY_FILE)
def _key_exists(ctx: Context) -> Finding:
    """The configured key backup file exists."""
    try:
        path = ctx.key_path()
    except Unavailable as missing:
        if ctx.settings.key_file is None:
            raise  # not configured: key.configured's to say
        return Finding(FAIL, missing.evidence, missing.fix)
    return Finding(OK, f"{path} exists")


@checks.check("key.location", needs=[Need.KEY_FILE])
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


@checks.check("key.mode", needs=[Need.KEY_FILE])
def _key_mode(ctx: Context) -> Finding:
    """The key backup is mode 600: only its owner can read it."""
    path = ctx.key_path()
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding(FAIL, f"{path} is mode {oct(mode)}: others can read it", f"chmod 600 {path}")
    return Finding(OK, f"mode {oct(mode)}")


@checks.check("key.valid", needs=[Need.KEY_FILE], gates=Need.VALID_KEY)
def _key_valid(ctx: Context) -> Finding:
    """The key backup is a well-formed zkkey v1 export."""
    try:
        kf = ctx.key()
    except KeyFileError as exc:
        return Finding(FAIL, "; ".join(exc.problems)[:300], one_line(exc.hint or ""))
    return Finding(OK, f"zkkey v1, RSA-{kf.modulus_length}, {kf.fingerprint[:19]}…")


@checks.check("key.registered", needs=[Need.VALID_KEY, Need.ENGINE])
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
