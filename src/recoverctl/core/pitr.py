"""Point-in-time recovery with pgBackRest: its settings, its commands and what it reports,
as data. Pure: nothing here runs a command or touches a file.

pgBackRest runs inside the db container (the image carries it) and is configured entirely
through its environment (`PGBACKREST_*`, its configuration file set to /dev/null): the db
service reads that environment from a private env file of its own, never from the stack's
env file, which the backend reads too. The repository's cipher passphrase and the S3
credentials therefore never reach the backend, an argv or the compose file.

Where each repository lives, inside the target's `PROJECT/STACK/` namespace:

| target | repository |
| --- | --- |
| dir | `PATH/PROJECT/STACK/pgbackrest`, mounted into the db container at `REPO_ROOT/NAME` |
| s3 | `s3://BUCKET/PREFIX/PROJECT/STACK/pgbackrest` |
| sftp | `PATH/PROJECT/STACK/pgbackrest` on the server (pgBackRest 2.46 and later) |
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from recoverctl.core.commands import Argv
from recoverctl.core.result import JsonResult
from recoverctl.errors import ErrorCode, RecoverctlError

STATE_DIR = ".recoverctl"  # in the project folder, git-ignored: files recoverctl owns
STANZA = "vault"
PGDATA = "/var/lib/postgresql/data"
REPO_ROOT = "/var/lib/pgbackrest-repos"  # folder repositories, one mount each
CA_ROOT = "/etc/pgbackrest-ca"  # S3 endpoints' CA bundles, one file each
FOLDER = "pgbackrest"  # the repository's folder in the target's namespace
MAX_REPOS = 4
# The override's own mark: compose ignores `x-` keys, recoverctl reads it back.
OVERRIDE_MARK = "x-recoverctl-pitr"
# The variable of the passphrase file (.env.pitr): a name every secret scan recognises.
PASSPHRASE_VARIABLE = "PGBACKREST_CIPHER_PASSWORD"  # noqa: S105 (a name)
PASSPHRASE_LENGTH = 48  # letters and digits: about 285 bits, and nothing compose interpolates

# pgBackRest's support per repository type, by its version.
SFTP_SINCE = (2, 46)

RepoKind = Literal["posix", "s3", "sftp"]


def data_volume(attrs: Mapping[str, Any]) -> str | None:
    """The named volume mounted at the data directory, from a container's attributes as
    the engine gives them; None when there is none."""
    for m in attrs.get("Mounts") or []:
        if m.get("Destination") == PGDATA and m.get("Type") == "volume" and m.get("Name"):
            return str(m["Name"])
    return None


def override_name(project: str) -> str:
    """The compose override of one compose project: another project (a drill's) has none."""
    return f"pitr-{project}.yml"


def env_name(project: str) -> str:
    return f"pitr-{project}.env"


def new_passphrase() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(PASSPHRASE_LENGTH))


def namespace_path(project: str, stack: str) -> str:
    return f"{project}/{stack}/{FOLDER}"


@dataclass(frozen=True)
class S3Access:
    """Credentials pgBackRest needs in its environment (it does not read the AWS chain)."""

    key: str
    secret: str
    token: str | None = None


@dataclass(frozen=True)
class Repo:
    """One repository: pgBackRest's repoN, from a [targets.*] table."""

    index: int  # N in repoN-*, from 1
    name: str  # the target's name
    kind: RepoKind
    location: str  # said to people: a host path or an s3:// URL
    options: tuple[tuple[str, str], ...]  # pgBackRest's repoN-* options, without secrets
    host_path: str | None = None  # dir: the folder on this machine, mounted into db
    ca_host_file: str | None = None  # s3: the CA bundle on this machine, mounted into db

    @property
    def mount(self) -> str | None:
        return f"{REPO_ROOT}/{self.name}" if self.kind == "posix" else None

    @property
    def ca_mount(self) -> str | None:
        return f"{CA_ROOT}/{self.name}.pem" if self.ca_host_file else None


def _env_name(option: str) -> str:
    return "PGBACKREST_" + option.upper().replace("-", "_")


def dir_repo(index: int, name: str, path: str, project: str, stack: str) -> Repo:
    host = f"{path.rstrip('/')}/{namespace_path(project, stack)}"
    mount = f"{REPO_ROOT}/{name}"
    return Repo(
        index,
        name,
        "posix",
        host,
        ((f"repo{index}-type", "posix"), (f"repo{index}-path", mount)),
        host_path=host,
    )


def s3_repo(
    index: int,
    name: str,
    *,
    bucket: str,
    prefix: str,
    endpoint_url: str | None,
    region: str | None,
    ca_file: str | None,
    project: str,
    stack: str,
) -> Repo:
    path = "/" + "/".join(p for p in (prefix.strip("/"), namespace_path(project, stack)) if p)
    r = f"repo{index}"
    options: list[tuple[str, str]] = [
        (f"{r}-type", "s3"),
        (f"{r}-path", path),
        (f"{r}-s3-bucket", bucket),
        (f"{r}-s3-region", region or "us-east-1"),
    ]
    if endpoint_url:
        parts = urlsplit(endpoint_url)
        if parts.scheme != "https":
            raise RecoverctlError(
                f"Target {name!r}: pgBackRest reaches S3 over HTTPS only, and its "
                f"endpoint_url is {endpoint_url}.",
                "Put a TLS endpoint in front of it (its CA in the target's ca_file).",
                code=ErrorCode.CONFIG_INVALID,
            )
        options.append((f"{r}-s3-endpoint", parts.hostname or ""))
        if parts.port:
            options.append((f"{r}-storage-port", str(parts.port)))
        # A custom endpoint (MinIO, a NAS, a test server) rarely has a bucket per host name.
        options.append((f"{r}-s3-uri-style", "path"))
    else:
        options.append((f"{r}-s3-endpoint", f"s3.{region or 'us-east-1'}.amazonaws.com"))
    repo = Repo(
        index,
        name,
        "s3",
        f"s3://{bucket}{path}",
        tuple(options),
        ca_host_file=ca_file,
    )
    if repo.ca_mount:
        repo = Repo(
            index,
            name,
            "s3",
            repo.location,
            (*repo.options, (f"{r}-storage-ca-file", repo.ca_mount)),
            ca_host_file=ca_file,
        )
    return repo


def sftp_repo(
    index: int,
    name: str,
    *,
    host: str,
    port: int,
    user: str,
    path: str,
    project: str,
    stack: str,
) -> Repo:
    full = f"{path.rstrip('/')}/{namespace_path(project, stack)}"
    r = f"repo{index}"
    return Repo(
        index,
        name,
        "sftp",
        f"sftp://{user}@{host}:{port}/{full.lstrip('/')}",
        (
            (f"{r}-type", "sftp"),
            (f"{r}-path", full),
            (f"{r}-sftp-host", host),
            (f"{r}-sftp-host-port", str(port)),
            (f"{r}-sftp-host-user", user),
        ),
    )


def supports(version: tuple[int, int], kind: RepoKind) -> bool:
    return kind != "sftp" or version >= SFTP_SINCE


@dataclass(frozen=True)
class Tuning:
    """What the settings say beyond the repositories."""

    archive_timeout: timedelta
    io_timeout: timedelta
    keep_full: int
    wal_max_mib: int


def environment(
    repos: Sequence[Repo],
    tuning: Tuning,
    *,
    pg_user: str,
    passphrase: str,
    s3: Mapping[str, S3Access],
) -> dict[str, str]:
    """Every PGBACKREST_* variable the db container needs, secrets included: written only to
    the private env file the db service alone reads."""
    io = max(1, int(tuning.io_timeout.total_seconds()))
    env: dict[str, str] = {
        "PGBACKREST_CONFIG": "/dev/null",
        "PGBACKREST_STANZA": STANZA,
        "PGBACKREST_PG1_PATH": PGDATA,
        "PGBACKREST_PG1_USER": pg_user,
        "PGBACKREST_LOG_LEVEL_CONSOLE": "warn",
        "PGBACKREST_LOG_LEVEL_STDERR": "warn",
        "PGBACKREST_LOG_LEVEL_FILE": "off",
        # Cheap on 2 cores: lz4 costs the live server a fraction of gz's CPU, and a switched,
        # mostly empty segment still shrinks to a few KiB.
        "PGBACKREST_COMPRESS_TYPE": "lz4",
        "PGBACKREST_PROCESS_MAX": "1",
        "PGBACKREST_START_FAST": "y",
        "PGBACKREST_ARCHIVE_PUSH_QUEUE_MAX": f"{tuning.wal_max_mib}MiB",
        "PGBACKREST_IO_TIMEOUT": str(io),
        "PGBACKREST_DB_TIMEOUT": str(max(io, 60)),
        "PGBACKREST_PROTOCOL_TIMEOUT": str(max(io, 60) + 30),
        # A backup waits this long for its last WAL segment to be archived.
        "PGBACKREST_ARCHIVE_TIMEOUT": str(max(60, 2 * io)),
    }
    for repo in repos:
        for option, value in repo.options:
            env[_env_name(option)] = value
        r = f"repo{repo.index}"
        env[_env_name(f"{r}-cipher-type")] = "aes-256-cbc"
        env[_env_name(f"{r}-cipher-pass")] = passphrase
        env[_env_name(f"{r}-retention-full")] = str(tuning.keep_full)
        env[_env_name(f"{r}-retention-full-type")] = "count"
        # Small files travel bundled: a handful of objects per backup, not one per file
        # (on S3, a request and a TLS handshake each).
        env[_env_name(f"{r}-bundle")] = "y"
        if repo.kind == "s3":
            access = s3.get(repo.name)
            if access is None:
                raise RecoverctlError(
                    f"No S3 credentials for target {repo.name!r}.",
                    "Give them as recoverctl finds them for its own copies (AWS_* variables, "
                    "~/.aws/credentials, or the target's profile).",
                    code=ErrorCode.CONFIG_INVALID,
                )
            env[_env_name(f"{r}-s3-key")] = access.key
            env[_env_name(f"{r}-s3-key-secret")] = access.secret
            if access.token:
                env[_env_name(f"{r}-s3-token")] = access.token
    return env


def env_file_text(env: Mapping[str, str]) -> str:
    """An env file compose reads as it is: values are letters, digits and `-_./:+@%` only."""
    lines = ["# Written by recoverctl pitr enable: the db service's pgBackRest settings.\n"]
    for key, value in env.items():
        if any(c in value for c in "\"'$\\\n\r#` "):
            raise RecoverctlError(
                f"pgBackRest setting {key} holds a character an env file cannot carry safely.",
                "Use a value without quotes, $, #, backslashes or spaces.",
                code=ErrorCode.CONFIG_INVALID,
            )
        lines.append(f"{key}={value}\n")
    return "".join(lines)


def server_options(archive_timeout: timedelta) -> tuple[str, ...]:
    """The postgres options that turn archiving on: the db service's command."""
    seconds = int(archive_timeout.total_seconds())
    return (
        "postgres",
        "-c",
        "wal_level=replica",
        "-c",
        "archive_mode=on",
        "-c",
        f"archive_command=pgbackrest --stanza={STANZA} archive-push %p",
        "-c",
        f"archive_timeout={seconds}s",
    )


# The db service's healthcheck with archiving on: the tracked compose files' own test
# (pg_isready), and once per server start a reload. PostgreSQL's checkpointer, which is what
# honours archive_timeout, is started while the startup process still runs, and its first
# sleep, reckoned then, is a whole checkpoint_timeout (5 min): after a clean start no
# segment is switched, and so none archived, until that first checkpoint. A reload sets its
# latch: it reckons again with archive_timeout at once. Once per start, whoever starts it
# (up, restart, a reboot's restart policy): the marker is named after postmaster.pid's time.
# The waking never fails the check. `$$`: compose's escape for a `$` the shell is to see.
WAKE_SQL = "SELECT pg_reload_conf()"
WAKING_HEALTHCHECK = (
    'pg_isready -U "$${POSTGRES_USER}" -d "$${POSTGRES_DB}" || exit 1; '
    f"m=/tmp/.recoverctl-woken-$$(stat -c %Y {PGDATA}/postmaster.pid 2>/dev/null); "
    '[ -e "$$m" ] || { PGCONNECT_TIMEOUT=2 psql -w -XqAt -U "$${POSTGRES_USER}" '
    '-d "$${POSTGRES_DB}" '
    f'-c "{WAKE_SQL}" >/dev/null 2>&1 && : > "$$m"; }}; exit 0'
)


def override(
    project: str,
    repos: Sequence[Repo],
    *,
    env_file: str,
    archive_timeout: timedelta,
) -> dict[str, Any]:
    """The compose override recoverctl owns: the db service's archive settings. Named after
    the compose project, so that no other project (a drill's) ever archives."""
    volumes: list[dict[str, Any]] = []
    for repo in repos:
        if repo.host_path and repo.mount:
            volumes.append({"type": "bind", "source": repo.host_path, "target": repo.mount})
        if repo.ca_host_file and repo.ca_mount:
            volumes.append(
                {
                    "type": "bind",
                    "source": repo.ca_host_file,
                    "target": repo.ca_mount,
                    "read_only": True,
                }
            )
    db: dict[str, Any] = {
        "command": list(server_options(archive_timeout)),
        "env_file": [env_file],
        "healthcheck": {"test": ["CMD-SHELL", WAKING_HEALTHCHECK]},
    }
    if volumes:
        db["volumes"] = volumes
    return {
        OVERRIDE_MARK: {"project": project, "stanza": STANZA},
        "services": {"db": db},
    }


def override_text(doc: Mapping[str, Any]) -> str:
    # JSON is YAML: nothing in it can be misread (a `no`, a `:` in a path).
    return json.dumps(doc, indent=2) + "\n"


# --- commands ---------------------------------------------------------------------------


def pgbackrest(command: str, *options: str) -> Argv:
    return ("pgbackrest", f"--stanza={STANZA}", *options, command)


def stanza_create() -> Argv:
    return pgbackrest("stanza-create")


def stanza_upgrade() -> Argv:
    """The stanza moved to the cluster that serves now (a new major, or back to the old
    one after a rollback): from then on it archives into the stanza's newest entry."""
    return pgbackrest("stanza-upgrade")


def check() -> Argv:
    return pgbackrest("check")


BackupType = Literal["full", "diff", "incr"]


def backup(kind: BackupType, repo: int) -> Argv:
    return pgbackrest("backup", f"--type={kind}", f"--repo={repo}")


def expire(repo: int) -> Argv:
    return pgbackrest("expire", f"--repo={repo}")


def info() -> Argv:
    return pgbackrest("info", "--output=json")


def verify(repo: int) -> Argv:
    # Its findings are info lines, and it exits 0 when it finds damage: parse_verify reads
    # them from stdout (warnings and errors still go to stderr). --verbose: its counts are
    # rendered when all is well too.
    return pgbackrest("verify", f"--repo={repo}", "--verbose", "--log-level-console=info")


def restore(
    repo: int, target: str | None, *, archive: bool = False, backup_set: str | None = None
) -> Argv:
    """Into an empty data directory. A copy starts with archiving off, so that it never
    writes the repository; with archive (the cluster recover installs, which is the one
    that archives from then on) the restore leaves archive_mode alone, so that the db
    service's own `-c archive_mode=on` is the only word on it. target: pgBackRest's
    --target (a time), None: latest. backup_set: the base backup to start from (pgBackRest
    picks the newest otherwise, which may have finished since the window was read)."""
    time_options = (
        ("--type=time", f"--target={target}", "--target-action=promote")
        if target is not None
        else ("--type=default",)
    )
    mode = "--archive-mode=preserve" if archive else "--archive-mode=off"
    chosen = (f"--set={backup_set}",) if backup_set else ()
    return pgbackrest("restore", f"--repo={repo}", mode, *chosen, *time_options)


def version() -> Argv:
    return ("pgbackrest", "version")


def parse_version(text: str) -> tuple[int, int]:
    # "pgBackRest 2.45"
    parts = text.strip().split()
    try:
        major, minor = parts[-1].split(".")[:2]
        return int(major), int(minor)
    except (IndexError, ValueError):
        raise RecoverctlError(
            f"Could not read pgBackRest's version from {text.strip()[:80]!r}.",
            "Check that the db image carries pgBackRest (`pgbackrest version` in db).",
            code=ErrorCode.PITR_FAILED,
        ) from None


# --- what pgBackRest reports ------------------------------------------------------------


@dataclass(frozen=True)
class BaseBackup:
    label: str
    type: str
    repo: int
    started: datetime
    stopped: datetime
    wal_start: str
    wal_stop: str
    size: int  # of the database
    stored: int  # in the repository
    error: bool


@dataclass(frozen=True)
class RepoInfo:
    index: int
    status: int  # pgBackRest's code: 0 ok
    message: str
    backups: tuple[BaseBackup, ...]
    wal_min: str | None
    wal_max: str | None
    cipher: str = ""  # this repository's cipher type, as pgBackRest reports it
    # The PostgreSQL major of the cluster the stanza archives now ("" before stanza-create)
    # and its archive folders: after a stanza-upgrade the repository also holds the
    # backups and WAL of the version before it, which this cluster's image cannot restore.
    version: str = ""
    archive_ids: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == 0

    @property
    def earliest(self) -> datetime | None:
        """The earliest point a restore can reach: the oldest good base backup's end."""
        good = [b.stopped for b in self.backups if not b.error]
        return min(good) if good else None

    @property
    def newest(self) -> BaseBackup | None:
        good = [b for b in self.backups if not b.error]
        return max(good, key=lambda b: b.stopped) if good else None

    def newest_of(self, kind: str) -> BaseBackup | None:
        good = [b for b in self.backups if not b.error and b.type == kind]
        return max(good, key=lambda b: b.stopped) if good else None


@dataclass(frozen=True)
class StanzaInfo:
    status: int
    message: str
    cipher: str
    repos: tuple[RepoInfo, ...]

    def repo(self, index: int) -> RepoInfo | None:
        return next((r for r in self.repos if r.index == index), None)


def wrong_image(
    repo: str, version: str, image: str, runs: int | None
) -> tuple[str, str] | None:
    """Message and hint when a repository's stanza names another major (version) than
    the image a restore would run (runs, from its tag): a cluster of one major does not
    start on another's server. None when they agree or either is unknown."""
    if not version or runs is None or version == str(runs):
        return None
    return (
        f"Repository {repo} holds a PostgreSQL {version} cluster; the env file's image "
        f"{image} runs {runs}: nothing was restored.",
        f"Set POSTGRES_IMAGE to a PostgreSQL {version} image in the env file (the copy "
        "pushed after an upgrade names it: recoverctl env pull), then recover.",
    )


def _at(value: object) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)  # type: ignore[call-overload]


def _current_cluster(stanza: Mapping[str, Any]) -> dict[int, tuple[set[int], str]]:
    """Per repository, the history entries of the cluster the stanza archives now and its
    major version. A stanza-upgrade appends an entry, so the last one is the cluster now;
    an upgrade rolled back (a stanza-upgrade to the old cluster again) appends one for the
    old cluster again, whose backups and WAL are all of one cluster with the ones before."""
    entries: dict[int, list[Mapping[str, Any]]] = {}
    for db in stanza.get("db", []):
        entries.setdefault(int(db["repo-key"]), []).append(db)
    found: dict[int, tuple[set[int], str]] = {}
    for key, dbs in entries.items():
        now = max(dbs, key=lambda d: int(d["id"]))
        same = {
            int(d["id"])
            for d in dbs
            if d["system-id"] == now["system-id"] and str(d["version"]) == str(now["version"])
        }
        found[key] = (same, str(now["version"]))
    return found


def parse_info(text: str) -> StanzaInfo:
    """`pgbackrest info --output=json`, judged: an answer of another shape is an error.
    Each repository's backups and WAL are those of the cluster the stanza archives now."""
    try:
        data = json.loads(text)
        stanza = next(s for s in data if s.get("name") == STANZA)
        current = _current_cluster(stanza)

        def now(database: Mapping[str, Any]) -> bool:
            ids = current.get(int(database["repo-key"]))
            return ids is None or int(database["id"]) in ids[0]

        repos: dict[int, dict[str, Any]] = {}

        def entry(key: int) -> dict[str, Any]:
            return repos.setdefault(
                key,
                {
                    "status": 0,
                    "message": "ok",
                    "backups": [],
                    "wal_min": None,
                    "wal_max": None,
                    "cipher": "",
                    "archive_ids": [],
                },
            )

        for r in stanza.get("repo", []):
            e = entry(int(r["key"]))
            e["status"] = int(r["status"]["code"])
            e["message"] = str(r["status"]["message"])
            e["cipher"] = str(r.get("cipher", ""))
        for b in stanza.get("backup", []):
            if not now(b["database"]):
                continue
            key = int(b["database"]["repo-key"])
            entry(key)["backups"].append(
                BaseBackup(
                    label=str(b["label"]),
                    type=str(b["type"]),
                    repo=key,
                    started=_at(b["timestamp"]["start"]),
                    stopped=_at(b["timestamp"]["stop"]),
                    wal_start=str((b.get("archive") or {}).get("start") or ""),
                    wal_stop=str((b.get("archive") or {}).get("stop") or ""),
                    size=int(b["info"]["size"]),
                    stored=int(b["info"]["repository"]["delta"]),
                    error=bool(b.get("error", False)),
                )
            )
        for a in stanza.get("archive", []):
            key = int(a["database"]["repo-key"])
            if key not in repos or not now(a["database"]):
                continue
            e = repos[key]
            if a.get("id"):
                e["archive_ids"].append(str(a["id"]))
            lo, hi = a.get("min"), a.get("max")
            if lo and (e["wal_min"] is None or lo < e["wal_min"]):
                e["wal_min"] = str(lo)
            if hi and (e["wal_max"] is None or hi > e["wal_max"]):
                e["wal_max"] = str(hi)
        return StanzaInfo(
            status=int(stanza["status"]["code"]),
            message=str(stanza["status"]["message"]),
            cipher=str(stanza.get("cipher", "")),
            repos=tuple(
                RepoInfo(
                    index=k,
                    status=v["status"],
                    message=v["message"],
                    backups=tuple(sorted(v["backups"], key=lambda b: b.stopped)),
                    wal_min=v["wal_min"],
                    wal_max=v["wal_max"],
                    cipher=v["cipher"],
                    version=current[k][1] if k in current else "",
                    archive_ids=tuple(v["archive_ids"]),
                )
                for k, v in sorted(repos.items())
            ),
        )
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        raise RecoverctlError(
            "pgBackRest's info came back in a shape recoverctl does not know.",
            "Run `pgbackrest info` in the db container to see it; check its version.",
            code=ErrorCode.PITR_FAILED,
        ) from None


# --- gaps in the archive -----------------------------------------------------------------

# An archived segment in the repository: TIMELINE LOG SEG (hex), its checksum, a
# compression extension. History and backup-label files have other names.
_SEGMENT_RE = re.compile(r"([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})-[0-9a-f]{40}(?:\.[a-z0-9]+)?")
_WAL_NAME_RE = re.compile(r"[0-9A-F]{24}")


def archive_ls(repo: int) -> Argv:
    """Every file of the stanza's WAL archive in one repository (names, never contents)."""
    return (*pgbackrest("repo-ls", f"--repo={repo}", "--recurse", "--output=json"),
            f"archive/{STANZA}")  # fmt: skip


def parse_archive_ls(text: str, archive_ids: Collection[str] = ()) -> tuple[str, ...]:
    """The archived segments' WAL names (24 hex digits), from `repo-ls --output=json`;
    archive_ids: only those folders' (one cluster's: another version's segments, after a
    stanza-upgrade, bear the same names)."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise TypeError
    except (ValueError, TypeError):
        raise RecoverctlError(
            "pgBackRest's listing of the archive came back in a shape recoverctl does not know.",
            "Run `pgbackrest repo-ls --recurse archive/vault` in the db container to see it.",
            code=ErrorCode.PITR_FAILED,
        ) from None
    found = set()
    for path, entry in data.items():
        if not isinstance(entry, dict) or entry.get("type") != "file":
            continue
        folder, _, _ = str(path).partition("/")
        if archive_ids and folder not in archive_ids:
            continue
        m = _SEGMENT_RE.fullmatch(str(path).rsplit("/", 1)[-1])
        if m:
            found.add("".join(m.groups()))
    return tuple(sorted(found))


@dataclass(frozen=True)
class Gap(JsonResult):
    """WAL missing from the archive: no restore replays across it. A base backup taken
    after it (closed_by) starts a whole window again; points between the gap and that
    backup stay out of reach."""

    first_missing: str
    last_missing: str
    segments: int
    closed_by: str | None  # the first good base backup whose WAL starts after the gap


def gap_text(found: Sequence[Gap]) -> str:
    """What the gaps cost, in a line; empty for none."""
    said = []
    for g in found:
        count = f"{g.segments} segment" + ("s" if g.segments != 1 else "")
        missing = f"WAL {g.first_missing} to {g.last_missing} ({count}) is missing"
        said.append(
            f"{missing}: no restore reaches past it until a new base backup"
            if g.closed_by is None
            else f"{missing}: the points between it and base backup {g.closed_by} are out of reach"
        )
    return "; ".join(said)


def _position(name: str, per_log: int) -> tuple[int, int]:
    return int(name[:8], 16), int(name[8:16], 16) * per_log + int(name[16:24], 16)


def _name(timeline: int, index: int, per_log: int) -> str:
    return f"{timeline:08X}{index // per_log:08X}{index % per_log:08X}"


def gaps(
    segments: Iterable[str],
    backups: Sequence[BaseBackup],
    segment_bytes: int = 16 * 2**20,
    *,
    through: str | None = None,
) -> tuple[Gap, ...]:
    """The runs of WAL missing on each timeline between the oldest good base backup's first
    segment (or the timeline's first archived one) and its newest archived one; through
    (the server's last archived segment, as PostgreSQL counts it) extends its timeline's
    run to it: WAL dropped at the end of an outage is missing too before any later
    segment reaches the repository."""
    per_log = 0x100000000 // segment_bytes
    present: dict[int, set[int]] = {}
    for name in segments:
        if _WAL_NAME_RE.fullmatch(name):
            tl, index = _position(name, per_log)
            present.setdefault(tl, set()).add(index)
    end: dict[int, int] = {tl: max(have) for tl, have in present.items()}
    if through is not None and _WAL_NAME_RE.fullmatch(through):
        tl, index = _position(through, per_log)
        if tl in end:
            end[tl] = max(end[tl], index)
    # Each good base backup's first segment, with its label: where a whole window starts.
    starts = sorted(
        (_position(b.wal_start, per_log), b.label)
        for b in backups
        if not b.error and _WAL_NAME_RE.fullmatch(b.wal_start)
    )
    found: list[Gap] = []
    for tl, have in sorted(present.items()):
        begin = min([i for (t, i), _ in starts if t == tl] or [min(have)])
        run: list[int] = []
        for index in range(begin, end[tl] + 1):
            if index not in have:
                run.append(index)
                continue
            if run:
                found.append(_gap(tl, run, starts, per_log))
                run = []
        if run:
            found.append(_gap(tl, run, starts, per_log))
    return tuple(found)


def _gap(tl: int, run: list[int], starts: list[tuple[tuple[int, int], str]], per_log: int) -> Gap:
    closing = next((label for start, label in starts if start > (tl, run[-1])), None)
    return Gap(
        first_missing=_name(tl, run[0], per_log),
        last_missing=_name(tl, run[-1], per_log),
        segments=len(run),
        closed_by=closing,
    )


def open_gaps(found: Sequence[Gap]) -> bool:
    """Some WAL is missing with no base backup after it: no restore reaches past it."""
    return any(g.closed_by is None for g in found)


def due(
    newest_full: datetime | None,
    newest_any: datetime | None,
    now: datetime,
    full_every: timedelta,
    diff_every: timedelta | None,
) -> BackupType | None:
    """Which base backup the routine takes now, if any: a full when none is younger than
    full_every, a differential when nothing is younger than diff_every."""
    if newest_full is None or now - newest_full >= full_every:
        return "full"
    if diff_every is not None and (newest_any is None or now - newest_any >= diff_every):
        return "diff"
    return None


# --- the archiver, as PostgreSQL reports it ----------------------------------------------

ARCHIVER_SQL = (
    "SELECT coalesce(last_archived_wal, ''), "
    "coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''), failed_count, "
    "coalesce(last_failed_wal, ''), "
    "coalesce(to_char(last_failed_time AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''), "
    "pg_walfile_name(pg_current_wal_lsn()), "
    "(SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), "
    "(SELECT coalesce(sum(size), 0) FROM pg_ls_waldir()), "
    "current_setting('archive_mode'), "
    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
    "FROM pg_stat_archiver"
)


@dataclass(frozen=True)
class Archiver:
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: datetime | None
    current_wal: str
    ready: int  # segments waiting to be archived
    pg_wal_bytes: int
    archive_mode: str
    now: datetime

    @property
    def lag(self) -> timedelta:
        """How long the oldest write not yet archived may have waited: none when no segment
        waits; else since the last success (or, with none, unknown: a day, to be seen)."""
        if self.ready == 0:
            return timedelta(0)
        if self.last_archived_at is None:
            return timedelta(days=1)
        return max(timedelta(0), self.now - self.last_archived_at)

    @property
    def failing(self) -> bool:
        """The last attempt failed: a failure newer than the last success."""
        if self.last_failed_at is None:
            return False
        return self.last_archived_at is None or self.last_failed_at > self.last_archived_at


# What archiving may lag behind archive_timeout before it counts as stalled: the archiver
# gets a segment only once it is switched, and copies it to every repository after that.
STALL_MARGIN = timedelta(seconds=60)


def stalled(archiver: Archiver, archive_timeout: timedelta) -> str | None:
    """Why archiving counts as stalled (its last attempt failed, or a segment has waited
    longer than archive_timeout and the margin), or None."""
    if archiver.failing:
        wal = archiver.last_failed_wal or "a segment"
        return f"archiving {wal} failed {archiver.failed_count} time(s), the last attempt too"
    if archiver.lag > archive_timeout + STALL_MARGIN:
        return (
            f"{archiver.ready} segment(s) wait, the last archived "
            f"{int(archiver.lag.total_seconds())} s ago (archive_timeout "
            f"{int(archive_timeout.total_seconds())} s)"
        )
    return None


def _when(value: str) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def parse_archiver(row: str) -> Archiver:
    fields = row.rstrip("\n").split("\t")  # psql's fields (core/pg.py)
    if len(fields) != 10:
        raise RecoverctlError(
            "The server's archiver state came back in a shape recoverctl does not know.",
            "Run `SELECT * FROM pg_stat_archiver` in the db container to see it.",
            code=ErrorCode.PITR_FAILED,
        )
    return Archiver(
        last_archived_wal=fields[0] or None,
        last_archived_at=_when(fields[1]),
        failed_count=int(fields[2]),
        last_failed_wal=fields[3] or None,
        last_failed_at=_when(fields[4]),
        current_wal=fields[5],
        ready=int(fields[6]),
        pg_wal_bytes=int(fields[7]),
        archive_mode=fields[8],
        now=datetime.fromisoformat(fields[9]),
    )


# A commit of its own: recovery to a time stops at the first commit after it, so the archive
# must hold one later than any time asked for (PostgreSQL refuses a target it never passed).
MARK_SQL = "SELECT pg_current_xact_id()"
REPLAYED_SQL = (
    "SELECT coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), ''), pg_is_in_recovery()"
)


def parse_replayed(row: str) -> tuple[datetime | None, bool]:
    fields = row.strip("\n").split("\t")
    return _when(fields[0]), fields[1] == "t"


# --- what pgBackRest's verify finds -------------------------------------------------------

# The file problems verify names, one line each: "P01 INFO: invalid checksum 'FILE'", or for
# a file it could not read at all "P01 INFO: invalid result FILE: [CODE] MESSAGE". A WAL
# segment missing is only a warning to pgBackRest (expire may have removed it): not damage.
_VERIFY_PROBLEM = re.compile(
    r"(INFO|WARN): (invalid checksum|invalid size|invalid result|file missing) '([^']+)'"
)
_VERIFY_UNREADABLE = re.compile(r"INFO: invalid result (\S+): (\[\d+\] [^\n]+)")
_VERIFY_STATUS = re.compile(r"^\s*status: (ok|error)\s*$", re.M)
_VERIFY_COUNTS = re.compile(r"(archiveId: [^\n]+|backup: [^\n]+)")


@dataclass(frozen=True)
class VerifyFinding:
    """What `pgbackrest verify` said about one repository."""

    ok: bool
    problems: tuple[str, ...]  # "invalid checksum '15-1/…/SEGMENT-SHA1.lz4'", in its order
    summary: str  # its counts, one line per archive id or backup; "" when it gave none

    @property
    def cause(self) -> str | None:
        if self.ok:
            return None
        if self.problems:
            more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
            return "; ".join(self.problems[:3]) + more + "."
        return "pgBackRest reports errors in the repository" + (
            f": {self.summary}." if self.summary else "."
        )


def parse_verify(output: str) -> VerifyFinding:
    """verify's output at info level (stdout and stderr). It exits 0 whatever it finds:
    damage is a line naming a file, or the status it renders ("status: error")."""
    problems = tuple(
        f"{kind} '{path}'"
        for level, kind, path in _VERIFY_PROBLEM.findall(output)
        if not (level == "WARN" and kind == "file missing")
    ) + tuple(
        f"unreadable '{path}' ({' '.join(said.split())})"
        for path, said in _VERIFY_UNREADABLE.findall(output)
    )
    failed = bool(problems) or "error" in _VERIFY_STATUS.findall(output)
    summary = "; ".join(" ".join(m.split()) for m in _VERIFY_COUNTS.findall(output))
    return VerifyFinding(not failed, problems, summary)
