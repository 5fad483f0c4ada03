"""Point-in-time recovery's shared machinery: its files, the db service's archive settings,
pgBackRest run in the db container, and what the repositories hold (core/pitr.py has the
pure half).

The files, in the project folder:

| file | what | who reads it |
| --- | --- | --- |
| `.env.pitr` (`.env.production.pitr`) | the repositories' cipher passphrase, made once | recoverctl; sealed off-site with the env files |
| `.recoverctl/pitr-PROJECT.yml` | the compose override: archive settings, repository mounts | compose, after the stack's compose file |
| `.recoverctl/pitr-PROJECT.env` | pgBackRest's whole environment, secrets included | the db service only |

All three are mode 0600. The two under `.recoverctl/` are made again from the settings and
the passphrase by every `pitr enable`; the passphrase is never made again while a
repository exists, which would lock its archive away for good.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db, ExecResult, cause_of
from recoverctl.core import pitr
from recoverctl.core.progress import Step
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.session import StackSession
from recoverctl.settings import PITR_FILES, PitrSettings, Settings

CONFIGURE_HINT = (
    'Add a [pitr] table to the settings file: repos = ["NAME"] (a [targets.NAME] of '
    "type dir or s3), then run recoverctl pitr enable."
)
_PASSPHRASE_LINE = re.compile(rf"^{pitr.PASSPHRASE_VARIABLE}=([A-Za-z0-9]{{32,256}})$")


class PitrError(RecoverctlError):
    default_code = ErrorCode.PITR_FAILED


def require(settings: Settings) -> PitrSettings:
    if settings.pitr is None:
        raise PitrError(
            "Point-in-time recovery is not configured.",
            CONFIGURE_HINT,
            code=ErrorCode.PITR_NOT_CONFIGURED,
        )
    return settings.pitr


def require_enabled(session: StackSession) -> PitrSettings:
    """[pitr] set and archiving enabled for this stack, else PitrError saying how."""
    wanted = require(session.settings)
    if not enabled(session):
        raise PitrError(
            "Archiving is not enabled for this stack.",
            "Turn it on first: recoverctl pitr enable"
            + (" --prod" if session.settings.stack == "prod" else ""),
            code=ErrorCode.PITR_NOT_CONFIGURED,
        )
    return wanted


@dataclass(frozen=True)
class Paths:
    passphrase: Path
    override: Path
    env: Path


def paths(session: StackSession) -> Paths:
    s = session.settings
    state = s.project_dir / pitr.STATE_DIR
    return Paths(
        passphrase=s.project_dir / PITR_FILES[s.stack],
        override=session.ref.pitr_override,
        env=state / pitr.env_name(session.project),
    )


def enabled(session: StackSession) -> bool:
    """Archiving is configured for this compose project (its override exists)."""
    return session.ref.pitr_override.is_file()


def read_passphrase(path: Path) -> str | None:
    """The passphrase file's value; None when there is no file. Judged: anything but one
    line of the known shape is refused, never used (a wrong passphrase reads nothing)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PitrError(
            f"Cannot read the repositories' passphrase file {path}: {exc}.",
            "Fix its permissions (mode 0600, yours), or bring it back: recoverctl env pull.",
            code=ErrorCode.PITR_PASSPHRASE,
        ) from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    found = _PASSPHRASE_LINE.match(lines[0]) if len(lines) == 1 else None
    if found is None:
        raise PitrError(
            f"The passphrase file {path} is damaged: it must hold one line "
            f"{pitr.PASSPHRASE_VARIABLE}=<letters and digits>.",
            "Bring the good one back (recoverctl env pull --target NAME); a new one would "
            "not open the repositories.",
            code=ErrorCode.PITR_PASSPHRASE,
        )
    return found.group(1)


def passphrase_text(value: str) -> bytes:
    return (
        "# The pgBackRest repositories' cipher passphrase (recoverctl pitr). Without it "
        "their backups and WAL cannot be read.\n"
        f"{pitr.PASSPHRASE_VARIABLE}={value}\n"
    ).encode()


def repos(session: StackSession) -> list[pitr.Repo]:
    """The [pitr] repositories, in the settings' order: pgBackRest's repo1, repo2, ..."""
    settings = session.settings
    wanted = require(settings)
    found: list[pitr.Repo] = []
    for index, name in enumerate(wanted.repos, 1):
        t = settings.targets[name]
        project, stack = session.project, settings.stack
        if t.type == "dir":
            found.append(pitr.dir_repo(index, name, str(t.path), project, stack))
        elif t.type == "s3":
            found.append(
                pitr.s3_repo(
                    index,
                    name,
                    bucket=t.bucket,
                    prefix=t.prefix,
                    endpoint_url=t.endpoint_url,
                    region=t.region,
                    ca_file=str(t.ca_file) if t.ca_file else None,
                    project=project,
                    stack=stack,
                )
            )
        else:
            found.append(
                pitr.sftp_repo(
                    index,
                    name,
                    host=t.host,
                    port=t.port,
                    user=t.user,
                    path=t.path,
                    project=project,
                    stack=stack,
                )
            )
    return found


def s3_access(settings: Settings, repos_: list[pitr.Repo]) -> dict[str, pitr.S3Access]:
    from recoverctl.adapters.targets.s3 import credentials

    found: dict[str, pitr.S3Access] = {}
    for repo in repos_:
        if repo.kind != "s3":
            continue
        t = settings.targets[repo.name]
        creds = credentials(getattr(t, "profile", None))
        if creds is not None:
            found[repo.name] = pitr.S3Access(*creds)
    return found


def tuning(settings: PitrSettings) -> pitr.Tuning:
    return pitr.Tuning(
        archive_timeout=settings.archive_timeout,
        io_timeout=settings.io_timeout,
        keep_full=settings.keep_full,
        wal_max_mib=settings.wal_max,
    )


@dataclass(frozen=True)
class Config:
    """What pitr enable writes, made from the settings and the passphrase."""

    repos: tuple[pitr.Repo, ...]
    override: str
    env: str


def config(session: StackSession, passphrase: str, pg_user: str) -> Config:
    settings = session.settings
    wanted = require(settings)
    found = repos(session)
    env = pitr.environment(
        found,
        tuning(wanted),
        pg_user=pg_user,
        passphrase=passphrase,
        s3=s3_access(settings, found),
    )
    where = paths(session)
    doc = pitr.override(
        session.project, found, env_file=str(where.env), archive_timeout=wanted.archive_timeout
    )
    return Config(tuple(found), pitr.override_text(doc), pitr.env_file_text(env))


def install(session: StackSession, made: Config) -> None:
    """Writes what the db service reads to archive (its private env file, the override),
    as enable and a recovery onto a new machine both do; the db picks it up when it next
    starts."""
    where = paths(session)
    write_private(where.env, made.env.encode())
    write_private(where.override, made.override.encode())


def environment_of(session: StackSession) -> dict[str, str]:
    """pgBackRest's environment as the db service has it (its private env file)."""
    path = paths(session).env
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PitrError(
            f"Cannot read {path}: {exc.strerror or exc}.",
            "Write it again: recoverctl pitr enable",
            code=ErrorCode.PITR_NOT_CONFIGURED,
        ) from None
    return dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))


def write_private(path: Path, data: bytes) -> bool:
    """Writes path (0600, atomically) when its bytes differ; whether it changed."""
    try:
        if path.read_bytes() == data:
            os.chmod(path, 0o600)
            return False
    except FileNotFoundError:
        pass
    fsio.ensure_private_dir(path.parent)
    fsio.write_atomic(path, data)
    return True


# --- pgBackRest in the db container ------------------------------------------------------


def run(db: Db, argv: tuple[str, ...], what: str, hint: str) -> ExecResult:
    result = db.run(argv)
    if not result.ok:
        cause = pgbackrest_cause(result.stderr_tail) or cause_of(result.stderr_tail)
        raise PitrError(
            f"{what} failed" + (f": {cause}" if cause else f" (exit {result.exit_code})."),
            hint,
            code=code_of(result.stderr_tail),
            details=result.stderr_tail or None,
        )
    return result


_ERROR_LINE = re.compile(r"ERROR: \[(\d+)\]: (.+)")
_S3_CODE = re.compile(r"<Error><Code>(\w+)</Code>")


def pgbackrest_cause(stderr: str) -> str | None:
    """pgBackRest's own first error, its code dropped: what a person needs to read. An
    error that ends in a colon goes on in its indented next line (the real cause: "unable
    to load info file ...:" then "unable to connect to ...")."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        found = _ERROR_LINE.search(line)
        if found:
            text = found.group(2).strip()
            more = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if text.endswith(":") and more and not _ERROR_LINE.search(more):
                text = f"{text} {more}"
            # An S3 refusal: its error code (SignatureDoesNotMatch, InvalidAccessKeyId, ...)
            # from the response pgBackRest dumps, rather than the dump.
            s3_code = _S3_CODE.search(stderr) if "HTTP request failed" in text else None
            if s3_code:
                text = f"{text.rstrip('.:')}: {s3_code.group(1)}"
            return text.rstrip(".:") + "."
    return None


def code_of(stderr: str) -> ErrorCode:
    # [043] CryptoError is what a wrong passphrase gives on every read.
    if "CryptoError" in stderr or "ERROR: [043]" in stderr or "cipher" in stderr.lower():
        return ErrorCode.PITR_PASSPHRASE
    return ErrorCode.PITR_FAILED


def version(db: Db) -> tuple[int, int]:
    result = db.run(pitr.version())
    if not result.ok:
        raise PitrError(
            "The db image has no pgBackRest.",
            "Use an image that carries it: the local one (scripts/test-env.sh) or one built "
            "on the official image (scripts/images/postgres-pitr).",
            code=ErrorCode.PITR_NOT_CONFIGURED,
        )
    return pitr.parse_version(result.stdout.decode("utf-8", "replace"))


def info(db: Db) -> pitr.StanzaInfo:
    result = run(
        db,
        pitr.info(),
        "pgbackrest info",
        "Check the repositories (recoverctl doctor), then try again.",
    )
    return pitr.parse_info(result.stdout.decode("utf-8", "replace"))


_SEGMENT_BYTES_SQL = "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'"


def gaps(
    db: Db, repo: pitr.Repo, held: pitr.RepoInfo, through: str | None
) -> tuple[pitr.Gap, ...]:
    """WAL missing from repo's archive between its oldest base backup and its newest
    segment: pgBackRest drops WAL past archive-push-queue-max while a repository is down,
    and PostgreSQL counts it archived. through: the server's last archived segment, read
    before the listing (which must hold it)."""
    result = run(
        db,
        pitr.archive_ls(repo.index),
        f"Listing the WAL archive of {repo.name} (pgbackrest repo-ls)",
        "Check the repository (recoverctl doctor), then try again.",
    )
    segments = pitr.parse_archive_ls(result.stdout.decode("utf-8", "replace"), held.archive_ids)
    size = db.query(_SEGMENT_BYTES_SQL, "postgres").strip()
    return pitr.gaps(
        segments, held.backups, int(size) if size.isdigit() else 16 * 2**20, through=through
    )


def archiver(db: Db) -> pitr.Archiver:
    return pitr.parse_archiver(db.query(pitr.ARCHIVER_SQL))


def archive_now(db: Db) -> datetime:
    """Everything committed so far reaches the archive: a commit of its own (so that a time
    up to now is passed by a later commit), a WAL switch, and pgBackRest's check, which
    waits until the switched segment is archived. Returns the server's time of the mark."""
    marked = db.query(
        f"{pitr.MARK_SQL}; SELECT to_char(now() AT TIME ZONE 'UTC', "
        '\'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\')'
    ).split()[-1]
    run(
        db,
        pitr.check(),
        "Archiving the newest WAL (pgbackrest check)",
        "Archiving is failing: see recoverctl pitr status and recoverctl doctor.",
    )
    return datetime.fromisoformat(marked)


def folder_seen(db: Db, repo: pitr.Repo) -> bool:
    """Whether the db container sees this machine's folder repository as it is now. A NAS
    mounted on the folder after db started is not seen by the container, which keeps the
    folder underneath: archiving would go on into that one, out of sight of the NAS."""
    if repo.host_path is None or repo.mount is None:
        return True
    name = f".recoverctl-probe-{secrets.token_hex(8)}"
    probe = Path(repo.host_path) / name
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    try:
        return db.run(("test", "-e", f"{repo.mount}/{name}")).ok
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


NOT_SEEN = (
    "the db container does not see this folder as it is on this machine (mounted again "
    "after db started?)"
)
NOT_SEEN_HINT = "Restart db so that it sees the folder again: recoverctl restart db"


def image_ready(db: Db, found: Iterable[pitr.Repo], image: str = "the db image") -> tuple[int, int]:
    """db's pgBackRest version, once it is judged able to reach every repository (enable,
    and an upgrade's new image before it serves); else PitrError."""
    have = version(db)
    for repo in found:
        if not pitr.supports(have, repo.kind):
            raise PitrError(
                f"Target {repo.name!r} is an {repo.kind} repository, which pgBackRest "
                f"{have[0]}.{have[1]} of {image} cannot use (from 2.46).",
                "Use a dir or s3 target for [pitr] repos, or an image with a newer pgBackRest.",
                code=ErrorCode.CONFIG_INVALID,
            )
    return have


def move_stanza(session: StackSession, major: int, step: Step) -> tuple[str, ...]:
    """The stanza moved to the cluster that serves now, of major (a new version, or the old
    one again after a rollback), archiving checked, and a full backup to each repository
    at once: the serving cluster's window starts there. The backups and WAL of the version
    before stay in the repositories, restorable with the image that made them. pgBackRest
    itself refuses WAL of a cluster the stanza does not name: no cluster ever archives into
    another version's history. Run again, it does what is left. Returns "REPO: LABEL" per
    backup taken."""
    db = session.db()
    again = "Then run the same recoverctl upgrade-postgres command again to finish."
    stanza = info(db)
    moved = any(r.version != str(major) for r in stanza.repos)
    if moved:
        step(f"moving the pgBackRest stanza to PostgreSQL {major} (stanza-upgrade)")
        run(db, pitr.stanza_upgrade(), "pgbackrest stanza-upgrade", f"See the cause. {again}")
    step("checking that WAL reaches every repository")
    run(db, pitr.check(), "pgbackrest check", f"See recoverctl pitr status. {again}")
    if moved:
        stanza = info(db)
    taken: list[str] = []
    for repo in repos(session):
        held = stanza.repo(repo.index)
        if not moved and held is not None and held.newest_of("full") is not None:
            continue
        step(f"a full backup to {repo.name}: PostgreSQL {major}'s window starts there")
        run(
            db,
            pitr.backup("full", repo.index),
            f"The full backup to {repo.name}",
            f"See the cause (recoverctl pitr status). {again}",
        )
        held = info(db).repo(repo.index)
        taken.append(f"{repo.name}: {held.newest.label if held and held.newest else '?'}")
    return tuple(taken)
