"""doctor's pitr group, when [pitr] is set: archiving on and working, pg_wal bounded, each
repository reachable, encrypted, holding a recent base backup and the window retention
promises, and the passphrase private and off-site.

Without [pitr] the group has nothing to say and shows no row (as backups.rto without rto):
a stack recovered from its dumps alone is not a problem. With [pitr] set, the RPO of the
live data is the archive's lag (pitr.rpo); backups.rpo still judges the dumps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from recoverctl.adapters import git
from recoverctl.core import pitr
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.errors import RecoverctlError
from recoverctl.services import envcopy
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    Need,
    Unavailable,
    config_hint,
    one_line,
    prod_flag,
)
from recoverctl.settings import PitrSettings

checks = GroupChecks(Group.PITR)
CIPHER = "aes-256-cbc"
# Beyond archive_timeout, how late the archive may be before doctor calls it stuck: one
# push may take io_timeout to give up on a repository, plus the server's own retry delay.
LAG_MARGIN = timedelta(seconds=30)
# The window is judged roughly: a full backup taken an hour early is no broken promise.
WINDOW_MARGIN = timedelta(hours=1)
# A base backup is due at full_every (diff_every); one missed cycle more is a failure.
DUE_MARGIN = 0.1  # of the period, at least an hour


def span(delta: timedelta) -> str:
    """A duration as doctor says it: 12 s, 5.0 min, 3.2 h, 2.1 d."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _wanted(ctx: Context) -> PitrSettings:
    wanted = ctx.settings.pitr
    assert wanted is not None  # Need.PITR holds only with [pitr] set
    return wanted


def _status_hint(ctx: Context) -> str:
    return f"recoverctl pitr status{prod_flag(ctx.settings)}"


# --- on, and archiving -----------------------------------------------------------------


@checks.check("pitr.enabled", gates=Need.PITR)
def _enabled(ctx: Context) -> Finding | None:
    """When [pitr] is set: archiving is enabled for this stack (its compose override is
    there) and the server runs with archive_mode=on."""
    if ctx.settings.pitr is None:
        return None  # not configured: the group has nothing to say
    flag = prod_flag(ctx.settings)
    try:
        where = ctx.pitr_paths()
    except Unavailable as missing:
        return Finding(
            FAIL,
            f"{missing.evidence}: nothing is archived although [pitr] is set",
            f"{missing.fix}, or remove [pitr] from {config_hint()}",
        )
    try:
        mode = ctx.archiver().archive_mode
    except RecoverctlError as exc:
        # The engine's or the db's own check says why; this one says what it could see.
        return Finding(
            WARN,
            f"{where.override.name} is there; the server's archive_mode not read: "
            + one_line(exc.message),
            "See the engine and db.answers checks, then run doctor again",
        )
    return enabled_check(mode, flag)


def enabled_check(archive_mode: str, flag: str = "") -> Finding:
    if archive_mode != "on":
        return Finding(
            FAIL,
            f"the override is there but the server runs with archive_mode={archive_mode}: "
            "nothing is archived",
            f"recoverctl pitr enable{flag} (it restarts db with archiving on)",
        )
    return Finding(OK, "enabled: the server runs with archive_mode=on")


@checks.check("pitr.archiving", needs=[Need.PITR, Need.DB])
def _archiving(ctx: Context) -> Finding:
    """WAL reaches the repositories: the last attempt did not fail, and the newest archived
    segment is within archive_timeout (and a margin) of the server's current one."""
    wanted = _wanted(ctx)
    return archiving_check(
        ctx.archiver(), wanted.archive_timeout, wanted.io_timeout, prod_flag(ctx.settings)
    )


def allowed_lag(archive_timeout: timedelta, io_timeout: timedelta) -> timedelta:
    return archive_timeout + io_timeout + LAG_MARGIN


def archiving_check(
    a: pitr.Archiver, archive_timeout: timedelta, io_timeout: timedelta, flag: str = ""
) -> Finding:
    what_to_do = (
        f"Read the cause: recoverctl logs db (archive-push), recoverctl pitr status{flag}; "
        "check the repositories (pitr.repos): reachable, writable, room left"
    )
    if a.archive_mode != "on":
        return Finding(
            FAIL,
            f"the server does not archive (archive_mode={a.archive_mode})",
            f"recoverctl pitr enable{flag}",
        )
    position = (
        f"last archived {a.last_archived_wal or 'none'}, current {a.current_wal}, "
        f"{a.ready} segment(s) waiting"
    )
    if a.failing:
        assert a.last_failed_at is not None
        since = (
            f"last success {span(a.now - a.last_archived_at)} ago"
            if a.last_archived_at
            else "never succeeded"
        )
        return Finding(
            FAIL,
            f"archiving fails: the last attempt ({a.last_failed_wal or '?'}) failed at "
            f"{moment(a.last_failed_at)}, {span(a.now - a.last_failed_at)} ago; {since}; "
            f"{a.failed_count} failures so far; {a.ready} segment(s) waiting",
            what_to_do,
        )
    limit = allowed_lag(archive_timeout, io_timeout)
    if a.lag > limit:
        return Finding(
            FAIL,
            f"archiving is {span(a.lag)} behind, over the {span(limit)} allowed "
            f"(archive_timeout {span(archive_timeout)}): {position}",
            what_to_do,
        )
    if a.last_archived_wal is None:
        return Finding(
            WARN,
            f"nothing archived yet: {position}",
            f"Run recoverctl pitr status{flag} again after archive_timeout "
            f"({span(archive_timeout)})",
        )
    return Finding(OK, f"{position}; lag {span(a.lag)}")


@checks.check("pitr.rpo", needs=[Need.PITR, Need.DB])
def _rpo(ctx: Context) -> Finding:
    """The archive's lag is within rpo, and archive_timeout can keep to it."""
    return rpo_check(ctx.archiver(), ctx.settings.rpo, _wanted(ctx).archive_timeout)


def rpo_check(a: pitr.Archiver, rpo: timedelta, archive_timeout: timedelta) -> Finding:
    text = f"archive lag {span(a.lag)}, rpo {span(rpo)}"
    if a.lag > rpo:
        return Finding(
            FAIL,
            f"{text}: commits since {span(a.lag)} ago would be lost",
            "Make archiving work again (see pitr.archiving)",
        )
    if archive_timeout > rpo:
        return Finding(
            WARN,
            f"{text}, but archive_timeout {span(archive_timeout)} lets a commit wait longer "
            "than rpo",
            f"Lower [pitr] archive_timeout (or raise rpo) in {config_hint()}",
        )
    return Finding(OK, f"{text} (a commit waits at most archive_timeout {span(archive_timeout)})")


@checks.check("pitr.pg_wal", needs=[Need.PITR, Need.DB])
def _pg_wal(ctx: Context) -> Finding:
    """pg_wal stays bounded: below [pitr] wal_max; half of it warns."""
    return pg_wal_check(ctx.archiver(), _wanted(ctx).wal_max)


def pg_wal_check(a: pitr.Archiver, wal_max_mib: int) -> Finding:
    mib = 1024 * 1024
    text = (
        f"pg_wal holds {a.pg_wal_bytes // mib} MiB of the {wal_max_mib} MiB allowed, "
        f"{a.ready} segment(s) waiting"
    )
    if a.pg_wal_bytes >= wal_max_mib * mib:
        return Finding(
            FAIL,
            text + ": pgBackRest drops WAL past it, a gap in the window",
            "Make archiving work again (pitr.archiving), then take a full base backup: "
            "recoverctl pitr backup --type full",
        )
    if a.pg_wal_bytes > wal_max_mib * mib // 2:
        return Finding(
            WARN,
            text,
            "Is archiving behind (pitr.archiving)? Else raise [pitr] wal_max if the disk has room",
        )
    return Finding(OK, text)


# --- the repositories ------------------------------------------------------------------


def _per_repo(
    ctx: Context, judge: Callable[[pitr.Repo, pitr.StanzaInfo], Finding | None]
) -> dict[str, Finding]:
    """One row per [pitr] repository; none when pgBackRest's info failed (pitr.repos says
    why, once)."""
    try:
        stanza = ctx.stanza()
    except RecoverctlError:
        return {}
    rows: dict[str, Finding] = {}
    for repo in ctx.pitr_repos():
        found = judge(repo, stanza)
        if found is not None:
            rows[repo.name] = found
    return rows


@checks.check("pitr.repos", needs=[Need.PITR, Need.DB], each="repo")
def _repos(ctx: Context) -> dict[str, Finding]:
    """Each repository is reachable and encrypted (aes-256-cbc), of a type the db image's
    pgBackRest supports (sftp from 2.46)."""
    version = ctx.pgbackrest_version()
    stanza = ctx.stanza()  # a failure is this check's one row
    flag = prod_flag(ctx.settings)
    return {
        repo.name: repo_check(repo, stanza.repo(repo.index), stanza.cipher, version, flag)
        for repo in ctx.pitr_repos()
    }


def supported_kinds(version: tuple[int, int]) -> str:
    kinds = [k for k in ("posix", "s3", "sftp") if pitr.supports(version, k)]
    later = "" if pitr.supports(version, "sftp") else "; sftp from 2.46"
    return f"pgBackRest {version[0]}.{version[1]}: {', '.join(kinds)}{later}"


def repo_check(
    repo: pitr.Repo,
    held: pitr.RepoInfo | None,
    stanza_cipher: str,
    version: tuple[int, int],
    flag: str = "",
) -> Finding:
    kinds = supported_kinds(version)
    if not pitr.supports(version, repo.kind):
        return Finding(
            FAIL,
            f"an {repo.kind} repository, which the db image cannot use ({kinds})",
            "Use a dir or s3 target in [pitr] repos, or an image with a newer pgBackRest",
        )
    if held is None:
        return Finding(
            FAIL,
            f"pgBackRest does not know repo{repo.index} ({repo.location}): the settings "
            "changed since pitr enable",
            f"recoverctl pitr enable{flag}",
        )
    cipher = held.cipher or stanza_cipher
    if held.status == 2:  # no valid backup yet: reachable; pitr.base_backup says the rest
        state = f"reachable, {held.message}"
    elif not held.ok:
        return Finding(
            FAIL,
            f"{repo.location}: {held.message} (pgBackRest status {held.status})",
            f"Check it is reachable and writable; recoverctl pitr status{flag}",
        )
    else:
        state = "ok"
    if cipher != CIPHER:
        return Finding(
            FAIL,
            f"{repo.location} is not encrypted with {CIPHER} (cipher {cipher or 'none'})",
            f"Give the repository a new, empty location, then recoverctl pitr enable{flag}",
        )
    status = WARN if held.status == 2 else OK
    fix = f"recoverctl pitr backup --type full{flag}" if status == WARN else ""
    return Finding(status, f"{state}, {CIPHER}, {repo.kind} at {repo.location} ({kinds})", fix)


@checks.check("pitr.base_backup", needs=[Need.PITR, Need.DB], each="repo")
def _base_backup(ctx: Context) -> dict[str, Finding]:
    """Each repository's newest full base backup is younger than full_every, and its newest
    base backup younger than diff_every."""
    wanted = _wanted(ctx)
    now = ctx.archiver().now
    flag = prod_flag(ctx.settings)
    return _per_repo(
        ctx,
        lambda repo, stanza: base_backup_check(
            stanza.repo(repo.index), now, wanted.full_every, wanted.diff_every, flag
        ),
    )


def _margin(period: timedelta) -> timedelta:
    return max(timedelta(hours=1), period * DUE_MARGIN)


def base_backup_check(
    held: pitr.RepoInfo | None,
    now: datetime,
    full_every: timedelta,
    diff_every: timedelta | None,
    flag: str = "",
) -> Finding | None:
    if held is None:
        return None  # pitr.repos says so
    full = held.newest_of("full")
    take_full = f"recoverctl pitr backup --type full{flag}"
    if full is None:
        return Finding(FAIL, "no full base backup: nothing to replay the archive on", take_full)
    full_age = now - full.stopped
    if full_age > 2 * full_every:
        return Finding(
            FAIL,
            f"the newest full base backup {full.label} is {span(full_age)} old, twice the "
            f"full_every {span(full_every)}",
            take_full + "; schedule it",
        )
    if full_age > full_every + _margin(full_every):
        return Finding(
            WARN,
            f"the newest full base backup {full.label} is {span(full_age)} old, over "
            f"full_every {span(full_every)}",
            take_full,
        )
    newest = held.newest
    assert newest is not None
    age = now - newest.stopped
    if diff_every is not None and age > diff_every + _margin(diff_every):
        return Finding(
            WARN,
            f"the newest base backup {newest.label} ({newest.type}) is {span(age)} old, over "
            f"diff_every {span(diff_every)}",
            f"recoverctl pitr backup --type diff{flag}",
        )
    return Finding(
        OK,
        f"newest full {full.label} {span(full_age)} old"
        + (f", newest {newest.type} {span(age)} old" if newest is not full else ""),
    )


@checks.check("pitr.window", needs=[Need.PITR, Need.DB], each="repo")
def _window(ctx: Context) -> dict[str, Finding]:
    """Each repository's window reaches back as far as retention promises: full_every
    times keep_full - 1 (a younger one warns, saying when it will be complete), and has no
    gap: WAL missing from its archive fails until a full base backup closes the gap (then a
    warning, until retention expires the backups before it)."""
    wanted = _wanted(ctx)
    now = ctx.archiver().now

    def judge(repo: pitr.Repo, stanza: pitr.StanzaInfo) -> Finding | None:
        held = stanza.repo(repo.index)
        holes = ctx.archive_gaps(repo, held) if held is not None and held.ok else ()
        return window_check(held, now, wanted.full_every, wanted.keep_full, holes)

    return _per_repo(ctx, judge)


def promised(full_every: timedelta, keep_full: int) -> timedelta:
    """How far back the window reaches once retention has kept keep_full fulls."""
    return full_every * (keep_full - 1)


def window_check(
    held: pitr.RepoInfo | None,
    now: datetime,
    full_every: timedelta,
    keep_full: int,
    gaps: tuple[pitr.Gap, ...] | None = (),
) -> Finding | None:
    """gaps None: the archive could not be listed, so whether it has one is not known."""
    if held is None or held.earliest is None:
        return None  # no repository or no base backup: pitr.repos, pitr.base_backup say so
    earliest = held.earliest
    reach = now - earliest
    promise = promised(full_every, keep_full)
    text = f"back to {moment(earliest)} ({span(reach)})"
    if gaps is None:
        return Finding(
            WARN,
            f"{text}; its archive could not be listed (pgbackrest repo-ls): gaps not checked",
            "See recoverctl pitr status for the repository's error",
        )
    if pitr.open_gaps(gaps):
        return Finding(
            FAIL,
            f"{text}, with a gap: {pitr.gap_text(gaps)}",
            "Take a full base backup now: recoverctl pitr backup --type full",
        )
    found = _reach(text, reach, promise, earliest, full_every, keep_full)
    if gaps:  # closed by a later base backup: only the points in between are lost
        return Finding(
            WARN,
            f"{found.evidence}; with a gap: {pitr.gap_text(gaps)}",
            found.fix or "Nothing to do: it leaves the window as retention expires the "
            "older backups",
        )
    return found


def _reach(
    text: str,
    reach: timedelta,
    promise: timedelta,
    earliest: datetime,
    full_every: timedelta,
    keep_full: int,
) -> Finding:
    if reach + WINDOW_MARGIN < promise:
        return Finding(
            WARN,
            f"{text}, short of the {span(promise)} retention promises (full_every "
            f"{span(full_every)} x {keep_full - 1}): complete around "
            f"{moment(earliest + promise)}",
            "Nothing to do if archiving began lately; else fewer full backups by hand",
        )
    return Finding(OK, f"{text}; retention promises {span(promise)}")


# --- the passphrase --------------------------------------------------------------------


@checks.check("pitr.passphrase", needs=[Need.PITR])
def _passphrase(ctx: Context) -> Finding:
    """The repositories' passphrase file exists, is mode 600, is ignored by git, and was
    pushed off-site with the env files when targets are configured."""
    s = ctx.settings
    from recoverctl.services import pitr as svc

    path = ctx.pitr_paths().passphrase
    name = path.name
    flag = prod_flag(s)
    try:
        value = svc.read_passphrase(path)
    except RecoverctlError as exc:
        return Finding(FAIL, one_line(exc.message), one_line(exc.hint or ""))
    if value is None:
        return Finding(
            FAIL,
            f"{name} is missing: the repositories cannot be read without it",
            f"Bring it back: recoverctl env pull --target NAME{flag}",
        )
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return Finding(FAIL, f"{name} is mode {oct(mode)}: others can read it", f"chmod 600 {path}")
    try:
        repo = ctx.repo()
    except Unavailable:
        repo = None  # not a checkout: nothing can commit it
    state = f"mode {oct(mode)}, " + ("ignored by git" if repo else "not in a git checkout")
    if repo is not None:
        real, top = path.resolve(), repo.resolve()
        rel = str(real.relative_to(top)) if real.is_relative_to(top) else None
        if rel is not None and rel not in git.ignored(repo, [rel]):
            return Finding(
                FAIL,
                f"{name} is not ignored by git: a commit would publish the archive's key",
                f"Add {name} to .gitignore",
            )
    if not s.targets:
        return Finding(
            WARN,
            f"{name}: {state}, but no off-site target holds it: it dies with this disk",
            f"Add [encryption] and a [targets.NAME] table to {config_hint()}, then "
            "recoverctl env push",
        )
    record = envcopy.read_record(envcopy.record_path(s, ctx.session.project))
    return offsite_check(name, state, path.read_bytes(), sorted(s.targets), record, flag)


def offsite_check(
    name: str,
    state: str,
    data: bytes,
    targets: list[str],
    record: dict[str, dict[str, str]],
    flag: str = "",
) -> Finding:
    """Whether envcopy's record has this file's fingerprint for every target: the copy
    there is the passphrase here."""
    key = f"env:{name}"
    fingerprint = hashlib.sha256(data).hexdigest()
    missing = [t for t in targets if key not in record.get(t, {})]
    other = [t for t in targets if t not in missing and record[t][key] != fingerprint]
    if missing or other:
        said = [f"{t}: none" for t in missing] + [f"{t}: another one" for t in other]
        return Finding(
            FAIL,
            f"{name} is not off-site as it is here ({', '.join(said)}): lose this server and "
            "the archive cannot be read",
            f"recoverctl env push{flag}",
        )
    return Finding(OK, f"{name}: {state}, off-site on {', '.join(targets)}")
