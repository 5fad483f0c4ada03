"""The --json contract: the envelope and each command's result, as pydantic models.

docs/json.md describes these fields for people; tests/cli/test_json_contract.py and the
e2e tests hold every command's real output to them; `python -m recoverctl.cli.contract`
prints them as one JSON Schema for other programs. A field added to a result must be added
here and in docs/json.md (the tests say so); a field changed or removed raises SCHEMA.

Nothing imports this module at run time: the CLI writes plain dicts (cli/render.py).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from recoverctl.errors import ErrorCode, exit_status

Stack = Literal["dev", "prod"]
Format = Literal["custom", "sql"]
Status = Literal["ok", "warn", "fail"]


class _Strict(BaseModel):
    # Every field documented: an undocumented one fails the tests, not a script later.
    model_config = ConfigDict(extra="forbid")


# --- shared parts -------------------------------------------------------------------


class Check(_Strict):
    name: str
    status: Status
    evidence: str
    fix: str | None


class Service(_Strict):
    service: str
    container: str | None
    state: str
    health: str | None
    ports: list[str]
    exit_code: int | None


# --- results, one per command ---------------------------------------------------------


class StackStatus(_Strict):
    """ps and restart."""

    project: str
    stack: Stack
    ready: bool
    services: list[Service]


class UpResult(StackStatus):
    built: bool
    seconds: float
    backup: str | None


class DownResult(_Strict):
    project: str
    stack: Stack
    volumes_removed: bool
    newest_backup: str | None
    safety_backup: str | None


class CopyError(_Strict):
    code: ErrorCode
    message: str
    hint: str | None


class OffsiteCopy(_Strict):
    """One backup on one target, after a push (backup's `offsite`, push's `copies`)."""

    target: str
    location: str
    backup: str
    status: Literal["pushed", "present", "failed"]
    encryption: Literal["age", "none"]
    size: int
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None
    seconds: float
    removed: list[str]
    error: CopyError | None


class PushResult(_Strict):
    ok: bool
    copies: list[OffsiteCopy]


class RemoteBackup(_Strict):
    name: str
    complete: bool
    created: str | None
    uploaded: str | None
    size: int
    plain_size: int | None
    format: Format | None
    encryption: Literal["age", "none"] | None
    objects: list[str]
    problems: list[str]


class TargetListResult(_Strict):
    """list --target."""

    target: str
    location: str
    encryption: Literal["age", "none"]
    backups: list[RemoteBackup]
    foreign: list[str]
    others: list[RemoteBackup]


class OffsiteVerifyResult(_Strict):
    """verify --target."""

    target: str
    location: str
    backup: str
    ok: bool
    decrypted: bool
    deep: bool
    format: Format | None
    checks: list[Check]
    seconds: float


class PullResult(_Strict):
    target: str
    location: str
    backup: str
    path: str
    manifest: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: int
    format: Format
    stack: Stack
    created: str
    encryption: Literal["age", "none"]
    sealed_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    seconds: float


class NewIdentityResult(_Strict):
    path: str
    recipient: Annotated[str, Field(pattern=r"^age1[02-9ac-hj-np-z]{58}$")]
    mode: Literal["0600"]
    next_steps: list[str]


class EnvCopy(_Strict):
    """The env files on one target, after a push (env push's and backup's `copies`)."""

    target: str
    location: str
    status: Literal["pushed", "unchanged", "failed"]
    files: list[str]
    size: int
    seconds: float
    removed: list[str]
    error: CopyError | None


class EnvPushResult(_Strict):
    """env push, and backup's `env`."""

    project: str
    ok: bool
    files: list[str]
    copies: list[EnvCopy]


class EnvPullResult(_Strict):
    project: str
    target: str
    location: str
    pushed_at: str
    written: list[str]
    kept: list[str]
    skipped: list[str]
    seconds: float


class BackupResult(_Strict):
    path: str
    manifest: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: int
    format: Format
    database: str
    stack: Stack
    tables: dict[str, int | None]
    duration_seconds: float
    warnings: list[str]
    offsite: list[OffsiteCopy] = Field(default_factory=list)
    env: EnvPushResult | None = None


class BackupEntry(_Strict):
    path: str
    name: str
    size: int
    created: str
    format: Format
    stack: str
    verification: Literal["never", "quick ok", "deep ok", "failed"]
    verified_at: str | None


class LastDrill(_Strict):
    result: Literal["passed", "failed", "interrupted"]
    started_at: str
    backup: str
    source: str
    recovery_seconds: float | None
    failed_checks: list[str]
    error: str | None


class ListResult(_Strict):
    folder: str
    stack: Stack
    backups: list[BackupEntry]
    strays: list[str]
    last_drill: LastDrill | None


class VerifyResult(_Strict):
    path: str
    ok: bool
    format: Format | None
    deep: bool
    provenance: Literal["manifest", "unverified"]
    checks: list[Check]
    seconds: float


class CurrentDatabase(_Strict):
    exists: bool
    tables: int
    rows: int
    size: int


class RestorePlan(_Strict):
    """restore --dry-run."""

    backup: str
    backup_format: Format
    backup_created: str | None
    backup_stack: str | None
    backup_tables: int | None
    backup_rows: int | None
    project: str
    stack: Stack
    database: str
    current: CurrentDatabase
    steps: list[str]
    warnings: list[str]


class StepTime(_Strict):
    step: str
    seconds: float


class RestoreResult(_Strict):
    backup: str
    database: str
    stack: Stack
    safety_backup: str | None
    tables: int
    rows: int
    seconds: float
    app_downtime_seconds: float | None
    steps: list[StepTime]
    drift_after_start: list[str]
    previous_database_kept_as: str | None


class Summary(_Strict):
    ok: int
    warn: int
    fail: int


class DoctorResult(_Strict):
    project: str
    stack: Stack
    ok: bool
    summary: Summary
    checks: list[Check]
    seconds: float


class DeclaredCheck(_Strict):
    name: str
    group: Literal["env", "git", "key", "stack", "backups", "targets"]
    needs: list[str]
    about: str


class DoctorList(_Strict):
    """doctor --list."""

    checks: list[DeclaredCheck]


class KeyCheckResult(_Strict):
    path: str
    fingerprint: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
    modulus: int
    iterations: int
    passphrase_checked: bool
    user: str | None
    secrets_total: int
    sampled: int
    opened: int


class RecoverResult(_Strict):
    project: str
    stack: Stack
    ok: bool
    restored_from: str | None
    restore_skipped: str | None
    checks: list[Check]
    url: str | None
    manual_step: str
    seconds: float
    serving_seconds: float | None = None
    steps: list[str]
    env_restored: list[str] = Field(default_factory=list)


class InitResult(_Strict):
    path: str
    stack: Stack
    mode: Literal["0600"]
    secrets: list[str]
    images: dict[str, str | None]
    image_source: Literal["official", "local", "unknown"]
    allowed_hosts: list[str]
    csrf_trusted_origins: list[str]
    port: int
    next_steps: list[str]
    warnings: list[str]


class DrillError(_Strict):
    code: ErrorCode
    message: str
    hint: str | None
    details: str | None


class DrillResult(_Strict):
    ok: bool
    result: Literal["passed", "failed", "interrupted"]
    project: str
    drill_project: str
    stack: Stack
    source: str
    backup: str
    backup_sha256: str | None
    backup_created: str | None
    started_at: str
    finished_at: str
    recovery_seconds: float | None
    seconds: float
    steps: list[StepTime]
    checks: list[Check]
    error: DrillError | None
    leftovers: list[str]
    record: str | None


class PruneBackup(_Strict):
    name: str
    created: str
    verification: Literal["never", "quick ok", "deep ok", "failed"]
    size: int
    keep: bool
    reasons: list[str]


class PruneScope(_Strict):
    where: str
    location: str
    policy: str
    backups: list[PruneBackup]
    kept: int
    to_delete: int
    deleted: list[str]
    leftovers: list[str]
    removed_leftovers: list[str]


class PruneResult(_Strict):
    stack: Stack
    dry_run: bool
    deleted: int
    scopes: list[PruneScope]


class RoutineStep(_Strict):
    name: Literal["backup", "verify", "push", "drill", "prune", "report"]
    status: Literal["ok", "failed", "skipped"]
    seconds: float
    detail: str


class RoutineResult(_Strict):
    project: str
    stack: Stack
    ok: bool
    started_at: str
    seconds: float
    backup: str | None
    steps: list[RoutineStep]
    warnings: list[str]


class ScheduleInstallation(_Strict):
    kind: Literal["systemd", "cron.d", "crontab"]
    files: list[str]
    when: str
    next_run: str | None
    active: bool | None


class LastRoutine(_Strict):
    ok: bool
    exit_status: int
    error_code: str | None
    message: str | None
    started_at: str
    finished_at: str
    backup: str | None
    last_success_at: str | None


class ScheduleResult(_Strict):
    """schedule install, status and remove."""

    action: Literal["install", "print", "status", "remove"]
    project: str
    stack: Stack
    name: str
    installed: list[ScheduleInstallation]
    command: list[str]
    units: dict[str, str]
    removed: list[str]
    last_routine: LastRoutine | None
    warnings: list[str]


# --- the envelope -------------------------------------------------------------------


class Error(_Strict):
    code: ErrorCode
    message: str
    hint: str | None
    details: str | None


class _Envelope(_Strict):
    schema_: Literal[1] = Field(alias="schema")
    command: str | None
    ok: bool
    exit_code: int
    result: Any
    error: Error | None
    warnings: list[str]

    @model_validator(mode="after")
    def _consistent(self) -> _Envelope:
        # ok, error and exit_code say one thing three ways; a script may read any of them.
        if self.ok != (self.error is None):
            raise ValueError("ok must be true exactly when error is null")
        expected = 0 if self.error is None else exit_status(self.error.code)
        if self.exit_code != expected:
            raise ValueError(f"exit_code {self.exit_code} does not follow the error's code")
        return self


class UsageEnvelope(_Envelope):
    """A command line that names no command recoverctl knows."""

    command: None
    ok: Literal[False]
    result: None


class UpEnvelope(_Envelope):
    command: Literal["up"]
    result: UpResult | None


class DownEnvelope(_Envelope):
    command: Literal["down"]
    result: DownResult | None


class PsEnvelope(_Envelope):
    command: Literal["ps"]
    result: StackStatus | None


class RestartEnvelope(_Envelope):
    command: Literal["restart"]
    result: StackStatus | None


class LogsEnvelope(_Envelope):
    """logs prints the services' own lines and takes no --json: only its usage errors."""

    command: Literal["logs"]
    ok: Literal[False]
    result: None


class BackupEnvelope(_Envelope):
    command: Literal["backup"]
    result: BackupResult | None


class ListEnvelope(_Envelope):
    command: Literal["list"]
    result: ListResult | TargetListResult | None


class VerifyEnvelope(_Envelope):
    command: Literal["verify"]
    result: VerifyResult | OffsiteVerifyResult | None


class PushEnvelope(_Envelope):
    command: Literal["push"]
    result: PushResult | None


class PullEnvelope(_Envelope):
    command: Literal["pull"]
    result: PullResult | None


class KeysNewIdentityEnvelope(_Envelope):
    command: Literal["keys new-identity"]
    result: NewIdentityResult | None


class RestoreEnvelope(_Envelope):
    command: Literal["restore"]
    result: RestorePlan | RestoreResult | None


class DoctorEnvelope(_Envelope):
    command: Literal["doctor"]
    result: DoctorResult | DoctorList | None


class KeysCheckEnvelope(_Envelope):
    command: Literal["keys check"]
    result: KeyCheckResult | None


class KeysEnvelope(_Envelope):
    """`keys` without a subcommand: only usage errors."""

    command: Literal["keys"]
    ok: Literal[False]
    result: None


class EnvEnvelope(_Envelope):
    """`env` without a subcommand: only usage errors."""

    command: Literal["env"]
    ok: Literal[False]
    result: None


class EnvPushEnvelope(_Envelope):
    command: Literal["env push"]
    result: EnvPushResult | None


class EnvPullEnvelope(_Envelope):
    command: Literal["env pull"]
    result: EnvPullResult | None


class RecoverEnvelope(_Envelope):
    command: Literal["recover"]
    result: RecoverResult | None


class InitEnvelope(_Envelope):
    command: Literal["init"]
    result: InitResult | None


class DrillEnvelope(_Envelope):
    command: Literal["drill"]
    result: DrillResult | None


class PruneEnvelope(_Envelope):
    command: Literal["prune"]
    result: PruneResult | None


class RoutineEnvelope(_Envelope):
    command: Literal["routine"]
    result: RoutineResult | None


class ScheduleEnvelope(_Envelope):
    """`schedule` without a subcommand: only usage errors."""

    command: Literal["schedule"]
    ok: Literal[False]
    result: None


class ScheduleInstallEnvelope(_Envelope):
    command: Literal["schedule install"]
    result: ScheduleResult | None


class ScheduleStatusEnvelope(_Envelope):
    command: Literal["schedule status"]
    result: ScheduleResult | None


class ScheduleRemoveEnvelope(_Envelope):
    command: Literal["schedule remove"]
    result: ScheduleResult | None


ENVELOPES: dict[str | None, type[_Envelope]] = {
    None: UsageEnvelope,
    "up": UpEnvelope,
    "down": DownEnvelope,
    "ps": PsEnvelope,
    "restart": RestartEnvelope,
    "logs": LogsEnvelope,
    "backup": BackupEnvelope,
    "list": ListEnvelope,
    "verify": VerifyEnvelope,
    "restore": RestoreEnvelope,
    "doctor": DoctorEnvelope,
    "keys": KeysEnvelope,
    "keys check": KeysCheckEnvelope,
    "recover": RecoverEnvelope,
    "init": InitEnvelope,
    "drill": DrillEnvelope,
    "prune": PruneEnvelope,
    "routine": RoutineEnvelope,
    "schedule": ScheduleEnvelope,
    "schedule install": ScheduleInstallEnvelope,
    "schedule status": ScheduleStatusEnvelope,
    "schedule remove": ScheduleRemoveEnvelope,
    "push": PushEnvelope,
    "pull": PullEnvelope,
    "keys new-identity": KeysNewIdentityEnvelope,
    "env": EnvEnvelope,
    "env push": EnvPushEnvelope,
    "env pull": EnvPullEnvelope,
}

# What a command's successful result is: restore's is the plan with --dry-run, doctor's
# the declared checks with --list.
RESULTS: dict[str, tuple[type[BaseModel], ...]] = {
    "up": (UpResult,),
    "down": (DownResult,),
    "ps": (StackStatus,),
    "restart": (StackStatus,),
    "backup": (BackupResult,),
    "list": (ListResult, TargetListResult),
    "verify": (VerifyResult, OffsiteVerifyResult),
    "restore": (RestorePlan, RestoreResult),
    "doctor": (DoctorResult, DoctorList),
    "keys check": (KeyCheckResult,),
    "recover": (RecoverResult,),
    "init": (InitResult,),
    "drill": (DrillResult,),
    "prune": (PruneResult,),
    "routine": (RoutineResult,),
    "schedule install": (ScheduleResult,),
    "schedule status": (ScheduleResult,),
    "schedule remove": (ScheduleResult,),
    "push": (PushResult,),
    "pull": (PullResult,),
    "keys new-identity": (NewIdentityResult,),
    "env push": (EnvPushResult,),
    "env pull": (EnvPullResult,),
}


def validate(document: object) -> _Envelope:
    """The envelope, checked against its command's model; raises pydantic's ValidationError."""
    if not isinstance(document, dict):
        raise TypeError(f"an envelope is a JSON object, not {type(document).__name__}")
    command = document.get("command")
    model = ENVELOPES.get(command) if command is None or isinstance(command, str) else None
    if model is None:
        raise ValueError(f"unknown command {command!r} in the envelope")
    return model.model_validate(document)


def json_schema() -> dict[str, Any]:
    union = Annotated[
        UsageEnvelope
        | UpEnvelope
        | DownEnvelope
        | PsEnvelope
        | RestartEnvelope
        | LogsEnvelope
        | BackupEnvelope
        | ListEnvelope
        | VerifyEnvelope
        | RestoreEnvelope
        | DoctorEnvelope
        | KeysEnvelope
        | KeysCheckEnvelope
        | RecoverEnvelope
        | InitEnvelope
        | DrillEnvelope
        | PruneEnvelope
        | RoutineEnvelope
        | ScheduleEnvelope
        | ScheduleInstallEnvelope
        | ScheduleStatusEnvelope
        | ScheduleRemoveEnvelope
        | PushEnvelope
        | PullEnvelope
        | KeysNewIdentityEnvelope
        | EnvEnvelope
        | EnvPushEnvelope
        | EnvPullEnvelope,
        Field(title="recoverctl --json envelope"),
    ]
    schema: dict[str, Any] = TypeAdapter(union).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
