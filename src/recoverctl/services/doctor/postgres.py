"""doctor's postgres group: the image compose would start matches the data directory's
major, that major's end of life, the POSTGRES_* settings an upgrade relies on, and the
cluster an upgrade kept."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, date, datetime, timedelta

from dotenv import dotenv_values

from recoverctl.core import upgrade
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.core.envgen import image_defaults
from recoverctl.core.pg import parse_version
from recoverctl.core.pitr import PGDATA, data_volume
from recoverctl.errors import RecoverctlError
from recoverctl.services.doctor.framework import Context, Group, GroupChecks, Need
from recoverctl.services.upgrade import kept_volume, read_journal

checks = GroupChecks(Group.POSTGRES)


def _env_file_values(ctx: Context) -> dict[str, str | None]:
    try:
        return dict(dotenv_values(ctx.settings.env_file))
    except (OSError, UnicodeError, ValueError):
        return {}  # env.file and env.syntax say what is wrong with it


@checks.check("postgres.settings", needs=[Need.ENV_FILE])
def _settings(ctx: Context) -> Finding:
    """POSTGRES_VOLUME names one of the compose file's volumes, and no POSTGRES_IMAGE
    exported in the shell overrides the env file's (compose prefers it, silently)."""
    values = _env_file_values(ctx)
    problem = upgrade.volume_problem(
        [
            ("the environment", os.environ.get(upgrade.VOLUME_VARIABLE)),
            (ctx.settings.env_file.name, values.get(upgrade.VOLUME_VARIABLE)),
        ]
    )
    if problem:
        return Finding(FAIL, problem, upgrade.VOLUME_FIX)
    exported = os.environ.get(upgrade.IMAGE_VARIABLE)
    written = values.get(upgrade.IMAGE_VARIABLE)
    if exported and written and exported != written:
        return Finding(
            WARN,
            f"{upgrade.IMAGE_VARIABLE}={exported} is exported in this shell and wins over "
            f"{ctx.settings.env_file.name}'s {written} in compose",
            f"unset {upgrade.IMAGE_VARIABLE} (the env file says which image the stack runs)",
        )
    volume = values.get(upgrade.VOLUME_VARIABLE) or upgrade.DEFAULT_VOLUME
    return Finding(OK, f"volume {volume}, image {written or 'the compose default'}")


def _configured_image(ctx: Context) -> tuple[str | None, str]:
    exported = os.environ.get(upgrade.IMAGE_VARIABLE)
    if exported:
        return exported, "exported in this shell"
    written = _env_file_values(ctx).get(upgrade.IMAGE_VARIABLE)
    if written:
        return written, f"in {ctx.settings.env_file.name}"
    text = ctx.settings.compose_file.read_text(encoding="utf-8", errors="replace")
    return image_defaults(text).get(upgrade.IMAGE_VARIABLE), "the compose file's default"


@checks.check("postgres.version", needs=[Need.ENGINE])
def _version(ctx: Context) -> Finding:
    """The image compose would start is the data directory's major version (its volume's
    PG_VERSION, read even when db does not start), and that major is not within a year
    of its end of life."""
    try:
        db = ctx.db()
        major = parse_version(db.query("SHOW server_version")).major
    except RecoverctlError:
        return _stopped_version(ctx)
    image, where = _configured_image(ctx)
    running = str(db.container.attrs["Config"]["Image"])
    return version_finding(
        major, image, where, running, ctx.settings.env_file.name, datetime.now(UTC).date()
    )


def _stopped_version(ctx: Context) -> Finding:
    """db is not running (an image of another major refuses the data directory and exits,
    for one): the volume's PG_VERSION, read by a one-off of db's own image, mounted
    read-only and with no network."""
    engine = ctx.engine()
    project = ctx.session.project
    try:
        container = engine.service_container(project, "db", running=False)
    except RecoverctlError:
        return Finding(OK, "no db container yet: nothing to compare")
    volume = data_volume(container.attrs)
    if volume is None:
        return Finding(WARN, f"db has no named volume at {PGDATA}: its major not read",
                       "Give the db service its named volume (db-data) as the compose file has it.")  # fmt: skip
    image = str(container.attrs["Config"]["Image"])
    name = f"{project}-doctor-pg-version"
    try:
        engine.remove_container(name)
        one_off = engine.run_detached(
            image, ("cat", "/data/PG_VERSION"), name=name, labels={"org.recoverctl.doctor": project},
            environment={}, mounts=[{"type": "volume", "source": volume, "target": "/data",
                                     "read_only": True}],
            network="none", entrypoint=(), user="postgres",  # PG_VERSION is 0600, theirs
        )  # fmt: skip
        engine.wait(one_off, 30)
        text = engine.stdout_of(one_off).decode("utf-8", "replace").strip()
    except RecoverctlError as exc:
        return Finding(WARN, f"db is not running, and its volume {volume} could not be read: "
                       f"{exc.message.rstrip('.')}", "Start the stack (recoverctl up), then run doctor again.")  # fmt: skip
    finally:
        with contextlib.suppress(RecoverctlError):
            engine.remove_container(name)
    if not text.isdigit():
        return Finding(OK, f"db is not running; its volume {volume} holds no cluster yet")
    configured, where = _configured_image(ctx)
    return version_finding(
        int(text), configured, where, image, ctx.settings.env_file.name, datetime.now(UTC).date()
    )


def version_finding(
    major: int, image: str | None, where: str, running: str, env_name: str, today: date
) -> Finding:
    named = upgrade.image_major(image) if image else None
    if named is not None and named != major:
        return Finding(
            FAIL,
            f"the data directory is PostgreSQL {major}, and compose would start {image} "
            f"({where}): PostgreSQL {named} refuses it",
            f"Set {upgrade.IMAGE_VARIABLE}={running} in {env_name}; to move "
            f"to {named}: recoverctl upgrade-postgres --to {named}",
        )
    warning = upgrade.eol_warning(major, today)
    if warning:
        return Finding(
            WARN,
            warning,
            f"Plan the upgrade: recoverctl upgrade-postgres --to {max(upgrade.TARGETS)} --dry-run",
        )
    eol = upgrade.end_of_life(major)
    return Finding(
        OK,
        f"PostgreSQL {major}"
        + (f", supported until {eol.isoformat()}" if eol else "")
        + (f" ({image})" if image else ""),
    )


@checks.check("postgres.upgrade", needs=[Need.ENV_FILE])
def _upgrade(ctx: Context) -> Finding:
    """No upgrade stopped half-way, and the cluster an upgrade kept is not forgotten
    (a reminder after 14 days)."""
    try:
        journal = read_journal(ctx.session)
    except RecoverctlError as exc:
        return Finding(FAIL, exc.message, exc.hint or "")
    volume = kept_volume(ctx.session, journal) if journal is not None else None
    return journal_finding(journal, volume, datetime.now(UTC))


def journal_finding(journal: upgrade.Journal | None, volume: str | None, now: datetime) -> Finding:
    if journal is None:
        return Finding(OK, "no upgrade in progress, no cluster kept")
    if journal.half_made:
        return Finding(
            FAIL,
            f"an upgrade to PostgreSQL {journal.to_major} stopped half-way ({journal.phase})",
            "recoverctl upgrade-postgres --to "
            f"{journal.to_major} (it undoes it first), or --rollback",
        )
    if journal.phase == "switched":
        return Finding(
            FAIL,
            f"an upgrade to PostgreSQL {journal.to_major} stopped after the switch",
            f"recoverctl upgrade-postgres --to {journal.to_major} finishes it",
        )
    since = journal.switched_at or journal.updated_at
    age = now - since
    said = f"{volume} kept since {since.date().isoformat()}"
    if age > timedelta(days=upgrade.KEPT_VOLUME_DAYS):
        return Finding(
            WARN,
            f"{said} ({age.days} days)",
            "Once the stack is fine on this version: recoverctl upgrade-postgres --forget-old",
        )
    return Finding(OK, said)
