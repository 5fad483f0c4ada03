"""Settings: one pydantic model, resolved from flags, then RECOVERCTL_* variables, then defaults.

Every validation problem is reported at once, in one ConfigError.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from recoverctl.core.compose_model import PROJECT_NAME_RE, ComposeModel
from recoverctl.core.duration import HOUR, MAX_DURATION, Duration, parse_duration
from recoverctl.core.retention import Policy
from recoverctl.errors import ConfigError, ErrorCode

Stack = Literal["dev", "prod"]

COMPOSE_FILES: dict[str, str] = {"dev": "docker-compose.dev.yml", "prod": "docker-compose.yml"}
ENV_FILES: dict[str, str] = {"dev": ".env", "prod": ".env.production"}
# Each stack's pgBackRest repository passphrase (recoverctl pitr enable writes it, once).
PITR_FILES: dict[str, str] = {"dev": ".env.pitr", "prod": ".env.production.pitr"}
ENV_PREFIX = "RECOVERCTL_"


# Off-site copies: [encryption] and [targets.NAME] in the settings file (never variables:
# a list of servers does not fit one). Public keys only; credentials stay in their own
# chains (AWS's, the SSH key file), never in these tables.
AGE_RECIPIENT_RE = re.compile(r"^age1[02-9ac-hj-np-z]{58}$")
TARGET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
S3_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
FILE_TABLES = ("recoverctl", "encryption", "targets", "retention", "monitoring", "pitr")


def check_recipient(value: str) -> str:
    """An age X25519 public key; a private key pasted by mistake is named, never echoed."""
    value = value.strip()
    if value.upper().startswith("AGE-SECRET-KEY-"):
        raise ValueError("this is a private key: only public keys (age1...) belong here")
    if not AGE_RECIPIENT_RE.match(value):
        raise ValueError("not an age public key (age1 followed by 58 characters)")
    return value


def _absolute(value: Path) -> Path:
    # A timer's or cron's current folder is nobody's choice: only an absolute path is clear.
    value = value.expanduser()
    if not value.is_absolute():
        raise ValueError("must be an absolute path (or start with ~/)")
    return value


AbsolutePath = Annotated[Path, AfterValidator(_absolute)]


class EncryptionSettings(BaseModel):
    """[encryption]: who can open the off-site copies (age recipients, public keys)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recipients: tuple[Annotated[str, AfterValidator(check_recipient)], ...] = ()
    # One recipient per line, as `age -R` reads it (# comments allowed); read when sealing.
    recipients_file: AbsolutePath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EncryptionSettings:
        if self.recipients and self.recipients_file is not None:
            raise ValueError("set recipients or recipients_file, not both")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.recipients) or self.recipients_file is not None


class _TargetSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # "none" writes this target in clear: an explicit opt-out, which doctor warns about.
    encryption: Literal["age", "none"] = "age"


class DirTargetSettings(_TargetSettings):
    type: Literal["dir"]
    path: AbsolutePath


class S3TargetSettings(_TargetSettings):
    type: Literal["s3"]
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # omit for AWS
    region: str | None = None
    profile: str | None = None  # an AWS profile; credentials come from the AWS chain
    # Parts of 5 MiB uploading at once: each is 5 MiB more of peak memory; 2 or more hide a
    # slow link's round trips.
    parts_in_flight: Annotated[int, Field(ge=1, le=8)] = 1
    # The CA bundle that signs the endpoint's certificate, when it is not a public one (a NAS's
    # or a test server's): recoverctl and pgBackRest (repo-storage-ca-file) both trust it.
    ca_file: AbsolutePath | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not S3_BUCKET_RE.match(value):
            raise ValueError("not a bucket name (3-63 of a-z, 0-9, '.', '-')")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise ValueError(
                "must not carry credentials: use the AWS chain (environment, "
                "~/.aws/credentials, profile)"
            )
        return value


class SftpTargetSettings(_TargetSettings):
    type: Literal["sftp"]
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(min_length=1)
    path: str = Field(min_length=1)  # relative paths are under the user's home
    key_file: AbsolutePath
    known_hosts: AbsolutePath = Field(default=Path("~/.ssh/known_hosts"), validate_default=True)


TargetSettings = Annotated[
    DirTargetSettings | S3TargetSettings | SftpTargetSettings, Field(discriminator="type")
]


class RetentionSettings(BaseModel):
    """[retention]: how many backups each rule keeps (restic's rules; README: Retention).
    Every rule at 0 is no policy: prune refuses it, the routine skips pruning."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_last: int = Field(default=0, ge=0)
    keep_hourly: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)

    def policy(self) -> Policy:
        return Policy(
            last=self.keep_last,
            hourly=self.keep_hourly,
            daily=self.keep_daily,
            weekly=self.keep_weekly,
            monthly=self.keep_monthly,
            yearly=self.keep_yearly,
        )


class MonitoringSettings(BaseModel):
    """[monitoring]: who hears how the routine ended. The URLs carry tokens: never echoed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    healthchecks_url: str | None = None  # any Healthchecks-compatible ping URL
    notify: tuple[str, ...] = ()  # apprise URLs
    notify_on: tuple[Literal["fail", "success"], ...] = ("fail",)
    prometheus_textfile: Path | None = None  # node_exporter's textfile collector reads *.prom

    @field_validator("healthchecks_url")
    @classmethod
    def _ping_url(cls, value: str | None) -> str | None:
        if value is not None and (
            urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname
        ):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else None

    @field_validator("notify")
    @classmethod
    def _apprise_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [i for i, url in enumerate(value, 1) if "://" not in url]
        if bad:
            raise ValueError(
                f"entry {', '.join(map(str, bad))} is not an apprise URL (scheme://...)"
            )
        return value

    @field_validator("prometheus_textfile")
    @classmethod
    def _textfile(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError("must be an absolute path (or start with ~/)")
        if value.suffix != ".prom":
            raise ValueError("must end in .prom: node_exporter reads only those")
        return value


class PitrSettings(BaseModel):
    """[pitr]: continuous WAL archiving with pgBackRest (README: Point-in-time recovery)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repos: tuple[str, ...] = Field(min_length=1, max_length=4)  # [targets.*] names
    # The longest a commit waits on the server before its WAL segment is archived: the RPO.
    archive_timeout: Duration = timedelta(seconds=60)
    full_every: Duration = timedelta(days=7)
    diff_every: Duration | None = timedelta(days=1)
    keep_full: int = Field(default=2, ge=1, le=100)
    # How long pgBackRest waits on a repository that does not answer before it gives up: a
    # repository down must fail archiving fast enough to be seen, not hang it for minutes.
    io_timeout: Duration = timedelta(seconds=20)
    # The most WAL pg_wal may hold while archiving fails; past it pgBackRest drops segments
    # (a gap in the window, closed by the next full backup) rather than fill the disk.
    wal_max: int = Field(default=1024, ge=64)  # MiB

    @field_validator("repos")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        twice = sorted({r for r in value if value.count(r) > 1})
        if twice:
            raise ValueError(f"names a repository twice: {', '.join(twice)}")
        return value

    @field_validator("archive_timeout")
    @classmethod
    def _archive_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= HOUR:
            raise ValueError("must be between 1s and 1h")
        if value.microseconds:
            raise ValueError("must be whole seconds")
        return value

    @field_validator("io_timeout")
    @classmethod
    def _io_timeout(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(minutes=10):
            raise ValueError("must be between 1s and 10m")
        return value


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project_dir: Path
    stack: Stack = "dev"
    compose_file: Path
    env_file: Path
    # Overrides the compose file's `name:`; the e2e tests use it to stay off a user's stack.
    project_name: str | None = None
    backup_dir: Path
    # Every time is a Duration ("90s", "15m", "24h", "30d"); OLD_SPELLINGS reads the
    # names and bare numbers of before.
    up_timeout: Duration = timedelta(seconds=300)
    rpo: Duration = timedelta(hours=24)
    key_file: Path | None = None
    # The routine deep-verifies its new backup when the last deep verification is older.
    deep_every: Duration = timedelta(hours=24)
    # Recovery drills: the routine drills when the last passed drill is older than
    # drill_every (None: never); doctor warns when none passed within drill_max_age, and
    # when the last drill's recovery time exceeded rto (None: no target).
    drill_every: Duration | None = None
    drill_max_age: Duration = timedelta(days=30)
    rto: Duration | None = None
    # From the settings file only: [retention] and [monitoring] (unattended operation).
    retention: RetentionSettings = RetentionSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    # From the settings file only: --log-file and RECOVERCTL_LOG_FILE win, and are read by the
    # CLI before the settings are resolved, so that a settings error is logged too.
    log_file: AbsolutePath | None = None
    # From the settings file only: [encryption] and [targets.NAME] (off-site copies).
    encryption: EncryptionSettings = EncryptionSettings()
    targets: dict[str, TargetSettings] = Field(default_factory=dict)
    # From the settings file only: [pitr] (continuous archiving); None: not configured.
    pitr: PitrSettings | None = None
    # The age private key that opens them (pull, restore and recover from a target); the
    # --identity flag wins, then RECOVERCTL_IDENTITY_FILE, then this.
    identity_file: AbsolutePath | None = None

    @field_validator("project_name")
    @classmethod
    def _valid_project_name(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits, '-' and '_'")
        return value

    @field_validator("up_timeout")
    @classmethod
    def _up_timeout(cls, value: timedelta) -> timedelta:
        # Longer than any stack takes to start: past it, something is stuck.
        if value > HOUR:
            raise ValueError("must be at most 1h")
        return value

    @field_validator("targets")
    @classmethod
    def _target_names(cls, value: dict[str, TargetSettings]) -> dict[str, TargetSettings]:
        bad = sorted(name for name in value if not TARGET_NAME_RE.match(name))
        if bad:
            raise ValueError(
                f"target names must be lowercase letters, digits, '-' and '_': {', '.join(bad)}"
            )
        return value

    @model_validator(mode="after")
    def _pitr_repos(self) -> Settings:
        if self.pitr is not None:
            unknown = [r for r in self.pitr.repos if r not in self.targets]
            if unknown:
                raise ValueError(
                    f"[pitr] repos names no [targets.*] table: {', '.join(unknown)}"
                )
        return self

    @property
    def compose_rel(self) -> str:
        return _rel(self.compose_file, self.project_dir)

    @property
    def env_rel(self) -> str:
        return _rel(self.env_file, self.project_dir)


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


CONFIG_KEYS = (
    "key_file",
    "backup_dir",
    "up_timeout",
    "rpo",
    "log_file",
    "deep_every",
    "drill_every",
    "drill_max_age",
    "rto",
    "identity_file",
)


@dataclass(frozen=True)
class OldSpelling:
    """A time setting's name, or its bare numbers, from before every time was a Duration.
    A bare number there keeps its old unit; a renamed one reads only what it read before."""

    key: str  # in the settings file; RECOVERCTL_ + key.upper() in the environment
    field: str  # the setting it sets now (the same key when only bare numbers are old)
    read: Callable[[object], timedelta]  # raises ValueError or ValidationError
    example: str  # the new spelling, for the deprecation warning

    @property
    def renamed(self) -> bool:
        return self.key != self.field


def _number_of(seconds: int, *, le: float | None = None) -> Callable[[object], timedelta]:
    """The old reader: a number (a float's messages, as before), in units of seconds."""
    adapter: TypeAdapter[float] = TypeAdapter(Annotated[float, Field(gt=0, le=le)])

    def read(value: object) -> timedelta:
        total = adapter.validate_python(value) * seconds
        if not total <= MAX_DURATION.total_seconds():  # inf too
            raise ValueError("must be at most 10 years (3660d)")
        return timedelta(seconds=total)

    return read


OLD_SPELLINGS = (
    OldSpelling("up_timeout", "up_timeout", _number_of(1, le=3600), "300s"),
    OldSpelling("rpo_hours", "rpo", _number_of(3600), "24h"),
    OldSpelling("deep_every", "deep_every", lambda v: parse_duration(v, bare="h"), "24h"),
    OldSpelling("drill_every", "drill_every", _number_of(86400), "7d"),
    OldSpelling("drill_days", "drill_max_age", _number_of(86400), "30d"),
    OldSpelling("rto_minutes", "rto", _number_of(60), "15m"),
)
OLD_KEYS = tuple(old.key for old in OLD_SPELLINGS if old.renamed)


def _bare_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def config_path(env: Mapping[str, str]) -> Path:
    """The user's settings file: where the key backup's location belongs (never in .env)."""
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env[f"{ENV_PREFIX}CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else None
    if base is None:
        base = Path(env.get("HOME") or Path.home()) / ".config"
    return base / "recoverctl" / "config.toml"


def read_config(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Settings file {path} is unreadable: {exc}.",
            "Fix it (TOML, keys under [recoverctl]) or move it away.",
        ) from None
    except (RecursionError, ValueError) as exc:  # nested too deep; an integer past the limit
        why = (
            "its tables or arrays nest too deep"
            if isinstance(exc, RecursionError)
            else ("it holds a number too large to read")
        )
        raise ConfigError(
            f"Settings file {path} is unreadable: {why}.",
            "Fix it (TOML, keys under [recoverctl]) or move it away.",
        ) from None
    table = data.get("recoverctl", {})
    if not isinstance(table, dict):
        raise ConfigError(f"Settings file {path}: [recoverctl] must be a table.")
    problems: list[str] = []
    unknown = sorted(set(table) - set(CONFIG_KEYS) - set(OLD_KEYS))
    if unknown:
        problems.append(f"unknown keys {', '.join(unknown)}")
    # A mistyped [target.nas] silently ignored would mean no off-site copy at all.
    strangers = sorted(set(data) - set(FILE_TABLES))
    if strangers:
        problems.append(f"unknown tables or keys {', '.join(strangers)} at the top level")
    if problems:
        raise ConfigError(
            f"Settings file {path}: {'; '.join(problems)}.",
            "Known keys: " + ", ".join(CONFIG_KEYS) + " under [recoverctl]; other tables: "
            "[encryption], [targets.NAME], [retention], [monitoring], [pitr].",
        )
    # [encryption] and [targets.*] are checked by the model, with every other value.
    return {**table, **{key: data[key] for key in FILE_TABLES[1:] if key in data}}


def find_project_dir(start: Path) -> Path | None:
    """The nearest folder, from start upwards, that holds one of the stacks' compose files."""
    for folder in (start, *start.parents):
        if any((folder / name).is_file() for name in COMPOSE_FILES.values()):
            return folder
    return None


def resolve_settings(
    *,
    prod: bool = False,
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Settings:
    """The settings; `warn` hears once of each old name used (they are read still)."""
    env = os.environ if environ is None else environ
    explicit = project_dir or (
        Path(env[f"{ENV_PREFIX}PROJECT_DIR"]) if env.get(f"{ENV_PREFIX}PROJECT_DIR") else None
    )
    base = (cwd or Path.cwd()).resolve()
    if explicit is not None:
        try:
            root = (base / explicit).resolve()
            usable = root.is_dir()
        except (OSError, RuntimeError) as exc:  # a name too long, a symlink loop
            raise ConfigError(
                f"Project folder {explicit} cannot be read: "
                f"{getattr(exc, 'strerror', None) or exc}.",
                "Pass --project-dir (or RECOVERCTL_PROJECT_DIR) pointing at the vault's checkout.",
                code=ErrorCode.PROJECT_NOT_FOUND,
            ) from None
        if not usable:
            raise ConfigError(
                f"Project folder {root} does not exist.",
                "Pass --project-dir (or RECOVERCTL_PROJECT_DIR) pointing at the vault's checkout.",
                code=ErrorCode.PROJECT_NOT_FOUND,
            )
    else:
        found = find_project_dir(base)
        if found is None:
            raise ConfigError(
                f"No vault project here: no docker-compose.yml or docker-compose.dev.yml in "
                f"{base} or its parents.",
                "Run recoverctl inside the vault's checkout, or pass --project-dir.",
                code=ErrorCode.PROJECT_NOT_FOUND,
            )
        root = found

    stack: Stack = "prod" if prod else "dev"
    raw: dict[str, object] = {
        "project_dir": root,
        "stack": stack,
        "compose_file": root / COMPOSE_FILES[stack],
        "env_file": root / ENV_FILES[stack],
        "backup_dir": root / "backups",
    }
    file = config_path(env)
    from_file = read_config(file)
    raw.update(from_file)
    # Where each value was set, for an error that names it there (never its value).
    origin = {key: f"{file} {key}" for key in from_file}
    for field, var in (
        ("project_name", "PROJECT_NAME"),
        ("backup_dir", "BACKUP_DIR"),
        ("up_timeout", "UP_TIMEOUT"),
        ("rpo", "RPO"),
        ("deep_every", "DEEP_EVERY"),
        ("drill_every", "DRILL_EVERY"),
        ("drill_max_age", "DRILL_MAX_AGE"),
        ("rto", "RTO"),
        ("key_file", "KEY_FILE"),
        ("identity_file", "IDENTITY_FILE"),
        *((old.key, old.key.upper()) for old in OLD_SPELLINGS if old.renamed),
    ):
        value = env.get(ENV_PREFIX + var)
        if value:
            raw[field] = value
            origin[field] = ENV_PREFIX + var
    problems = _old_spellings(raw, origin, warn)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems += exc.errors()
    if problems:
        order = list(Settings.model_fields)
        fields = {old.key: old.field for old in OLD_SPELLINGS}

        def rank(err: Mapping[str, Any]) -> int:
            loc: tuple[object, ...] = tuple(err.get("loc") or ("",))
            name = fields.get(str(loc[0]), str(loc[0]))
            return order.index(name) if name in order else len(order)

        raise ConfigError(
            "Invalid settings:\n"
            + "\n".join(_describe(err, origin, file) for err in sorted(problems, key=rank)),
            "Fix the RECOVERCTL_* variables or the settings file entries named above.",
        )
    # Relative paths from the environment are relative to the project, not to the cwd.
    updates: dict[str, object] = {}
    if not settings.backup_dir.is_absolute():
        updates["backup_dir"] = root / settings.backup_dir
    if settings.key_file is not None and not settings.key_file.is_absolute():
        updates["key_file"] = root / settings.key_file
    return settings.model_copy(update=updates) if updates else settings


def _old_spellings(
    raw: dict[str, object], origin: dict[str, str], warn: Callable[[str], None] | None
) -> list[Any]:
    """Reads the old spellings of raw into their settings, in place: an old name into its new
    one, a bare number into a Duration. Returns the problems, as pydantic's errors are."""
    problems: list[Any] = []
    for old in OLD_SPELLINGS:
        if old.key not in raw:
            continue
        value = raw[old.key]
        if old.renamed:
            if old.field in raw:
                message = (
                    f"the old name of {old.field}, which {origin[old.field]} sets too: "
                    "keep only the new name"
                )
                problems.append(_problem(old.key, message))
                del raw[old.key]
                continue
            if warn is not None:
                warn(_deprecated(origin[old.key], old))
            del raw[old.key]
        elif not _bare_number(value):
            continue  # a Duration, read by the model
        try:
            raw[old.field] = old.read(value)
        except ValidationError as exc:
            problems += [{**e, "loc": (old.key,)} for e in exc.errors()]
        except ValueError as exc:
            problems.append(_problem(old.key, str(exc)))
        if old.renamed:
            origin[old.field] = origin[old.key]
    return problems


def _deprecated(where: str, old: OldSpelling) -> str:
    """The warning for an old name, set at `where` (`FILE key` or a variable)."""
    if where.startswith(ENV_PREFIX):
        new = ENV_PREFIX + old.field.upper()
        example = f"{new}={old.example}"
    else:
        new, example = old.field, f'{old.field} = "{old.example}"'
    return f"{where} is deprecated: use {new} instead, a duration with its unit ({example})"


def _problem(key: str, message: str) -> dict[str, object]:
    return {"loc": (key,), "msg": message, "type": "value_error"}


def _describe(err: object, origin: Mapping[str, str], file: Path) -> str:
    """One line per problem: where the value was set and what is wrong with it. The value
    itself is never repeated: it may be a secret pasted into the wrong setting."""
    assert isinstance(err, dict)
    path = tuple(str(p) for p in err.get("loc", ()))
    message = str(err.get("msg", "")).removeprefix("Value error, ")
    if path and path[0] in FILE_TABLES[1:]:
        if err.get("type") in ("union_tag_not_found", "union_tag_invalid"):
            return f'  {file} {_file_entry(path[:2])} type: must be "dir", "s3" or "sftp"'
        return f"  {file} {_file_entry(path)}: {message}"
    where = origin.get(path[0], ENV_PREFIX + path[0].upper()) if path else str(file)
    rest = ".".join(path[1:])
    return f"  {where}{' ' + rest if rest else ''}: {message}"


def _file_entry(path: tuple[str, ...]) -> str:
    """`[targets.nas] path` for an entry of the settings file's own tables."""
    if path[0] == "targets" and len(path) >= 2:
        table, rest = f"[targets.{path[1]}]", path[2:]
        # A tagged union puts the tag ("dir", "s3", "sftp") in the location: not a key.
        if rest and rest[0] in ("dir", "s3", "sftp"):
            rest = rest[1:]
    else:
        table, rest = f"[{path[0]}]", path[1:]
    key = ".".join(rest)
    return f"{table} {key}" if key else table


def project_name(settings: Settings, compose: ComposeModel) -> str:
    return settings.project_name or compose.name
