"""A major PostgreSQL upgrade, as data: which image and volume each major uses, the end of
life of each major, the journal an upgrade keeps of its steps, and the commands that carry
a cluster across. Pure: the service runs them (services/upgrade.py).

The volume a stack's db uses is picked by POSTGRES_VOLUME among the volumes its compose
file declares (`db-data`, today's, and `db-data-17`): compose refuses any other name, so
the variable can never reach another project's volume, and an installation that never
upgraded keeps `db-data`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

IMAGE_VARIABLE = "POSTGRES_IMAGE"
VOLUME_VARIABLE = "POSTGRES_VOLUME"
DEFAULT_VOLUME = "db-data"
# The majors an upgrade can move to, each with the volume the compose files declare for it.
TARGETS: dict[int, str] = {17: "db-data-17"}
# How long the kept old volume may wait for --forget-old before doctor reminds of it.
KEPT_VOLUME_DAYS = 14

# End of life of each major, from the PostgreSQL project's versioning policy
# (https://www.postgresql.org/support/versioning/: five years after its first release,
# on the November minor release).
END_OF_LIFE: dict[int, date] = {
    12: date(2024, 11, 21),
    13: date(2025, 11, 13),
    14: date(2026, 11, 12),
    15: date(2027, 11, 11),
    16: date(2028, 11, 9),
    17: date(2029, 11, 8),
    18: date(2030, 11, 14),
}

_TAG = re.compile(r"^(?P<major>\d+)(?:\.\d+)*(?P<rest>-[A-Za-z0-9_.-]+)?$")


def image_major(image: str) -> int | None:
    """The major version an image's tag names (`postgres:15`, `postgres:16.4-bookworm`,
    `recoverctl-test/postgres:17`); None when its tag names none (`latest`, a digest)."""
    if "@" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return None
    found = _TAG.match(tag)
    return int(found["major"]) if found else None


def is_image_name(image: str) -> bool:
    """A reference docker takes, that an env file holds unquoted."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/@+-]*", image) is not None


def image_for(image: str, major: int) -> str | None:
    """The same image at another major (`postgres:15` → `postgres:17`, a suffix such as
    `-bookworm` kept); None when its tag names no major to replace."""
    if image_major(image) is None:
        return None
    name, _, tag = image.rpartition(":")
    found = _TAG.match(tag)
    assert found is not None  # image_major matched it
    return f"{name}:{major}{found['rest'] or ''}"


def volume_for(major: int) -> str:
    return TARGETS[major]


def project_volumes() -> tuple[str, ...]:
    return (DEFAULT_VOLUME, *TARGETS.values())


def is_project_volume(name: str) -> bool:
    """A value POSTGRES_VOLUME may take: one of the volumes the compose files declare."""
    return name == DEFAULT_VOLUME or name in TARGETS.values()


def volume_problem(seen: list[tuple[str, str | None]]) -> str | None:
    """What is wrong with POSTGRES_VOLUME where it is set (each (where, value)), or None:
    only the compose file's own volume names pass. Said by session before compose runs and
    by doctor's postgres.settings."""
    for where, value in seen:
        if value and not is_project_volume(value):
            return (
                f"{VOLUME_VARIABLE}={value} in {where} is not one of the compose file's "
                f"volumes ({', '.join(project_volumes())})"
            )
    return None


VOLUME_FIX = f"Set it to one of them, or remove it (default {DEFAULT_VOLUME})"


def end_of_life(major: int) -> date | None:
    return END_OF_LIFE.get(major)


def eol_warning(major: int, today: date) -> str | None:
    """What doctor says when the server's major is past or within a year of its end of
    life; None when it is further, or the major is not in the table."""
    eol = end_of_life(major)
    if eol is None:
        return None
    if eol <= today:
        return f"PostgreSQL {major} reached its end of life on {eol.isoformat()}"
    if (eol - today).days <= 365:
        return f"PostgreSQL {major} reaches its end of life on {eol.isoformat()}"
    return None


Phase = Literal[
    "started",  # preflight passed; the new cluster starting, the rollback point being taken
    "backed_up",  # the rollback point verified
    "new_cluster",  # the new cluster made on its volume, waited for (it may be half-made)
    "app_stopped",  # the app stopped, the final dump being loaded
    "loaded",  # every row, role and grant carried and compared
    "switched",  # the env file names the new image and volume
    "done",  # the stack serves on the new cluster
    "rolled_back",  # back on the old cluster after a finished upgrade
]
# Until the env file is switched, an interrupted upgrade is undone; after, it is finished.
BEFORE_SWITCH: tuple[Phase, ...] = ("started", "backed_up", "new_cluster", "app_stopped", "loaded")


class Journal(BaseModel):
    """An upgrade's steps, on disk beside the env file: after a kill -9 or a reboot the
    next run reads where it stopped. Written atomically at each phase."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    project: str
    stack: str
    from_major: int
    to_major: int
    old_image: str
    new_image: str
    # The env file's own values before the switch (None: it had none).
    old_image_setting: str | None
    old_volume: str
    new_volume: str
    phase: Phase
    started_at: datetime
    updated_at: datetime
    backup: str | None = None  # the verified rollback point
    aside: str | None = None  # after a rollback: the dump of the abandoned new cluster
    switched_at: datetime | None = None

    def at(self, phase: Phase, **changes: object) -> Journal:
        return self.model_copy(update={"phase": phase, "updated_at": datetime.now(UTC), **changes})

    @property
    def half_made(self) -> bool:
        return self.phase in BEFORE_SWITCH


def journal_name(project: str) -> str:
    return f"upgrade-{project}.json"


def new_cluster_name(project: str) -> str:
    """The container the new cluster runs in beside the live one until the switch."""
    return f"{project}-upgrade-db"


def volume_labels(project: str, volume: str) -> dict[str, str]:
    """The labels compose gives a volume it made: with them, compose adopts the new
    cluster's volume as its own when the env file names it (and `down --volumes` of this
    project, never of another, removes it)."""
    return {"com.docker.compose.project": project, "com.docker.compose.volume": volume}


def full_volume(project: str, volume: str) -> str:
    return f"{project}_{volume}"


# The stream across majors runs inside the new cluster's container, with the new
# version's client tools (the documented way across), from the live db by its service
# name on the stack's network. Passwords stay in the container's own environment.
_CONNECT = 'PGPASSWORD="$POSTGRES_PASSWORD"; export PGPASSWORD'


def transfer_script(user: str, database: str, live_host: str = "db") -> tuple[str, ...]:
    """argv: roles (with their passwords) then the database (its encoding, locale,
    settings, ownership and grants: `--create`), from the live cluster into the new one;
    any error stops it (ON_ERROR_STOP, --exit-on-error, pipefail).

    The bootstrap superuser exists in the new cluster already (initdb made it, with the
    same name and password): its CREATE ROLE is the one statement skipped, its ALTER ROLE
    (attributes and password) still runs."""
    u = shlex.quote(user)
    d = shlex.quote(database)
    h = shlex.quote(live_host)
    skip = shlex.quote(f"CREATE ROLE {quote_ident(user)};")
    script = "\n".join(
        (
            "set -euo pipefail",
            _CONNECT,
            f"pg_dumpall -h {h} -U {u} --roles-only | grep -vxF {skip} |"
            f" psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U {u} -d postgres >/dev/null",
            f"pg_dump -h {h} -U {u} -d {d} --create --format=custom |"
            f" pg_restore -h /var/run/postgresql -U {u} -d postgres --create --exit-on-error",
        )
    )
    return ("bash", "-c", script)


def quote_ident(name: str) -> str:
    """SQL's identifier quoting, as pg_dumpall writes role names: bare when it may be."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


# What must read the same in both clusters after the load; each query's rows are compared
# whole (sorted), so a role, a grant or a setting that did not come across fails the upgrade.
CARRIED: dict[str, str] = {
    "roles": (
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,"
        " rolreplication, rolbypassrls, rolconnlimit, coalesce(rolpassword, '')"
        " FROM pg_authid WHERE rolname !~ '^pg_' ORDER BY 1"
    ),
    "database": (
        "SELECT d.datname, pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,"
        " r.rolname, coalesce(d.datacl::text, '') FROM pg_database d"
        " JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = current_database()"
    ),
    "settings": (
        "SELECT coalesce(r.rolname, ''), array_to_string(s.setconfig, ',')"
        " FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole"
        " LEFT JOIN pg_database d ON d.oid = s.setdatabase"
        " WHERE d.datname = current_database() OR s.setdatabase = 0 ORDER BY 1, 2"
    ),
    # Privileges one by one (aclexplode), less MAINTAIN: PostgreSQL 17 added it and gives
    # it to every owner, so an owner's raw ACL reads arwdDxtm there for arwdDxt before.
    "ownership": (
        "SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner),"
        " coalesce((SELECT string_agg(p, ',' ORDER BY p) FROM (SELECT"
        " pg_get_userbyid(a.grantee) || ':' || a.privilege_type || ':' || a.is_grantable AS p"
        " FROM aclexplode(c.relacl) a WHERE a.privilege_type <> 'MAINTAIN') x), '')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND n.nspname !~ '^pg_toast' ORDER BY 1, 2"
    ),
    "schemas": (
        "SELECT nspname, pg_get_userbyid(nspowner), coalesce(nspacl::text, '')"
        " FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND nspname !~ '^pg_(toast|temp)' ORDER BY 1"
    ),
    "extensions": "SELECT extname FROM pg_extension ORDER BY 1",
}

# What the upgrade does not carry: a database beside the app's ('postgres' is initdb's own).
OTHER_DATABASES = (
    "SELECT datname FROM pg_database WHERE NOT datistemplate"
    " AND datname NOT IN ('postgres', current_database()) ORDER BY 1"
)
# The extensions a database uses that the new server has no build of.
MISSING_EXTENSIONS = "SELECT extname FROM pg_extension ORDER BY 1"
AVAILABLE_EXTENSIONS = "SELECT name FROM pg_available_extensions ORDER BY 1"


@dataclass(frozen=True)
class Difference:
    """What did not come across: which comparison, and the first differing line each side."""

    what: str
    live: str
    new: str

    def text(self) -> str:
        return f"{self.what}: {self.live or '(nothing)'} in the live cluster, {self.new or '(nothing)'} in the new one"


def differences(live: dict[str, str], new: dict[str, str]) -> list[Difference]:
    """Each CARRIED comparison whose rows differ, with the first line that does.

    ACLs and the public schema's owner differ by design across some majors (15 made
    `public` owned by pg_database_owner); the comparisons are read as the server prints
    them, so a default that moved is reported, not hidden."""
    found = []
    for what in CARRIED:
        a = live.get(what, "").splitlines()
        b = new.get(what, "").splitlines()
        if a == b:
            continue
        only_a = [line for line in a if line not in b]
        only_b = [line for line in b if line not in a]
        found.append(Difference(what, only_a[0] if only_a else "", only_b[0] if only_b else ""))
    return found


def missing_extensions(used: list[str], available: list[str]) -> list[str]:
    have = set(available)
    return [name for name in used if name not in have]


def disk_needed(database_bytes: int, dump_bytes: int) -> int:
    """A second copy of the database, the dump beside it, and a tenth to spare."""
    return int((database_bytes + dump_bytes) * 1.1)


def parse_df(text: str) -> int | None:
    """Free bytes from `df -Pk PATH`'s second line; None when it cannot be read."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    fields = lines[-1].split()
    if len(fields) < 4 or not fields[3].isdigit():
        return None
    return int(fields[3]) * 1024
