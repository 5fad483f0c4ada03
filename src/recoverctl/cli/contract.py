"""The --json contract: the envelope, one table of commands and their results, and the
models derived from the results' own declarations.

A result declares its JSON on itself (core/result.py): its fields, in order, are the
JSON's. This module turns each result type into a pydantic model (extra fields forbidden)
and each command of COMMANDS into its envelope. docs/json.md describes the fields for
people; tests/cli/test_json_contract.py and the e2e tests hold every command's real output
to these models and to that page; `python -m recoverctl.cli.contract` prints them as one
JSON Schema for other programs. A field added to a result is added to the result and to
docs/json.md (the tests say so); a field changed or removed raises SCHEMA.

Nothing imports this module at run time: the CLI writes plain dicts (cli/render.py).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import operator
import types
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model, model_validator
from typing_extensions import is_typeddict

from recoverctl.actions import pitr
from recoverctl.actions.backup import BackupDone
from recoverctl.actions.identity import NewIdentity
from recoverctl.actions.init import InitResult
from recoverctl.actions.keys import KeyCheckResult
from recoverctl.actions.prune import PruneResult
from recoverctl.actions.push import PushReport
from recoverctl.actions.recover import RecoverResult
from recoverctl.actions.restore import ToTimePlan, ToTimeResult
from recoverctl.actions.routine import RoutineReport
from recoverctl.actions.schedule import ScheduleResult
from recoverctl.actions.stack import DownResult, UpResult
from recoverctl.actions.upgrade import ForgetResult, RollbackResult, UpgradeResult
from recoverctl.actions.verify import OffsiteReport
from recoverctl.core import result as declared
from recoverctl.core.restore_plan import RestorePlan
from recoverctl.core.stack import StackStatus
from recoverctl.errors import ErrorCode, exit_status
from recoverctl.services import envcopy, offsite
from recoverctl.services.catalog import Listing
from recoverctl.services.doctor import CheckList, DoctorReport
from recoverctl.services.drill import DrillResult
from recoverctl.services.pitr_verify import PitrVerifyReport
from recoverctl.services.restore import RestoreResult
from recoverctl.services.verification import VerifyReport


class _Strict(BaseModel):
    # Every field documented: an undocumented one fails the tests, not a script later.
    model_config = ConfigDict(extra="forbid")


# --- models derived from the results' declarations ----------------------------------

# The names some results import for type checking only, for their annotations.
_HINTS: dict[str, Any] = {
    "Copy": offsite.Copy,
    "PushResult": offsite.PushResult,
    "EnvPushResult": envcopy.EnvPushResult,
}
_MODELS: dict[Any, type[BaseModel]] = {}


def model_of(cls: type) -> type[BaseModel]:
    """The JSON model of a result type: its declared JSON fields, in order."""
    if cls not in _MODELS:
        if dataclasses.is_dataclass(cls) and declared.is_declared(cls):
            _MODELS[cls] = _declared(cls)
        elif isinstance(cls, type) and issubclass(cls, BaseModel):
            _MODELS[cls] = _strict_copy(cls)
        elif is_typeddict(cls):
            hints = get_type_hints(cls, include_extras=True)
            fields: dict[str, Any] = {n: (_json_type(t), ...) for n, t in hints.items()}
            _MODELS[cls] = create_model(cls.__name__, __base__=_Strict, **fields)
        else:
            raise TypeError(f"{cls.__name__} declares no JSON and has no model here")
    return _MODELS[cls]


def _declared(cls: type) -> type[BaseModel]:
    hints = get_type_hints(cls, localns=_HINTS, include_extras=True)
    fields: dict[str, Any] = {}
    for item in declared.items(cls):
        spec = item.spec
        if item.is_property:
            getter = getattr(cls, item.attribute).fget
            annotation = get_type_hints(getter, localns=_HINTS, include_extras=True)["return"]
        else:
            annotation = hints[item.attribute]
        if spec.flatten:
            inner = model_of(annotation).model_fields
            for name in spec.pick or [n for n in inner if n not in spec.omit]:
                fields[name] = (_with_metadata(inner[name].annotation, inner[name].metadata), ...)
            continue
        if spec.schema is not None:
            annotation = spec.schema
        elif spec.empty_is_null:
            annotation = annotation | None
        fields[item.name] = (_json_type(annotation), ...)
    return create_model(cls.__name__, __base__=_Strict, **fields)


def _strict_copy(model: type[BaseModel]) -> type[BaseModel]:
    # A pydantic result as the JSON has it: every field present, none other allowed. A
    # field annotated with a Spec's schema is typed by it (a code kept as a plain str).
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        specs = [m for m in info.metadata if isinstance(m, declared.Spec)]
        rest = [m for m in info.metadata if not isinstance(m, declared.Spec)]
        schemas = [s.schema for s in specs if s.schema is not None]
        annotation = schemas[0] if schemas else info.annotation
        fields[name] = (_with_metadata(_json_type(annotation, pydantic=True), rest), ...)
    return create_model(model.__name__, __base__=_Strict, **fields)


def _union(members: Iterable[Any]) -> Any:
    return functools.reduce(operator.or_, members)


def _with_metadata(annotation: Any, metadata: list[Any]) -> Any:
    return Annotated[annotation, *metadata] if metadata else annotation


def _json_type(annotation: Any, *, pydantic: bool = False) -> Any:
    """A result field's annotation, as the type of its JSON value. A pydantic model's own
    fields keep their types (its validators expect them): pydantic knows their JSON."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _with_metadata(_json_type(args[0], pydantic=pydantic), list(annotation.__metadata__))
    if origin in (Union, types.UnionType):
        return _union(_json_type(a, pydantic=pydantic) for a in args)
    if origin is Literal or annotation in (Any, None, type(None), bool, int, float, str):
        return annotation
    if origin in (tuple, list):
        if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis):
            raise TypeError(f"{annotation}: a fixed-length tuple needs its JSON declared")
        return list[_json_type(args[0], pydantic=pydantic)]  # type: ignore[misc]
    if origin is dict:
        key, value = (_json_type(a, pydantic=pydantic) for a in args)
        return dict[key, value]  # type: ignore[valid-type]
    if isinstance(annotation, type):
        if issubclass(annotation, PurePath | datetime | date):
            return annotation if pydantic else str
        if issubclass(annotation, enum.Enum):
            return annotation
        return model_of(annotation)
    raise TypeError(f"{annotation!r} has no JSON type")


# --- the one table of commands --------------------------------------------------------

# Each command, as typed, and what its successful result is: restore's is the plan with
# --dry-run, doctor's the declared checks with --list, list's and verify's a target's with
# --target, verify's the repositories' with --pitr. No result: the command answers with usage errors only (logs streams the
# services' own lines and takes no --json; keys, env and schedule are groups). None: a
# command line that names no command recoverctl knows.
COMMANDS: dict[str | None, tuple[type, ...]] = {
    None: (),
    "up": (UpResult,),
    "down": (DownResult,),
    "ps": (StackStatus,),
    "restart": (StackStatus,),
    "logs": (),
    "backup": (BackupDone,),
    "list": (Listing, offsite.TargetListing),
    "verify": (VerifyReport, OffsiteReport, PitrVerifyReport),
    "restore": (RestorePlan, RestoreResult, ToTimePlan, ToTimeResult),
    "doctor": (DoctorReport, CheckList),
    "keys": (),
    "keys check": (KeyCheckResult,),
    "recover": (RecoverResult,),
    "init": (InitResult,),
    "drill": (DrillResult,),
    "prune": (PruneResult,),
    "upgrade-postgres": (UpgradeResult, RollbackResult, ForgetResult),
    "routine": (RoutineReport,),
    "schedule": (),
    "schedule install": (ScheduleResult,),
    "schedule status": (ScheduleResult,),
    "schedule remove": (ScheduleResult,),
    "push": (PushReport,),
    "pull": (offsite.Pulled,),
    "keys new-identity": (NewIdentity,),
    "env": (),
    "env push": (envcopy.EnvPushResult,),
    "env pull": (envcopy.EnvPullResult,),
    "pitr": (),
    "pitr enable": (pitr.EnableResult,),
    "pitr disable": (pitr.DisableResult,),
    "pitr status": (pitr.PitrStatus,),
    "pitr backup": (pitr.PitrBackupResult,),
}

RESULTS: dict[str, tuple[type[BaseModel], ...]] = {
    command: tuple(model_of(t) for t in types_)
    for command, types_ in COMMANDS.items()
    if command is not None and types_
}


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


def _envelope(command: str | None, results: tuple[type[BaseModel], ...]) -> type[_Envelope]:
    name = "".join(w.capitalize() for w in (command or "usage").replace("-", " ").split())
    fields: dict[str, Any] = {"command": (Literal[command] if command else None, ...)}
    if results:
        fields["result"] = (_union((*results, None)), ...)
    else:
        fields |= {"ok": (Literal[False], ...), "result": (None, ...)}
    return create_model(f"{name}Envelope", __base__=_Envelope, **fields)


ENVELOPES: dict[str | None, type[_Envelope]] = {
    command: _envelope(command, RESULTS.get(command, ()) if command else ())
    for command in COMMANDS
}
UsageEnvelope = ENVELOPES[None]


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
    # Built at run time from the table: a type checker cannot follow it.
    union: Any = Annotated[
        _union(ENVELOPES.values()),
        Field(title="recoverctl --json envelope"),
    ]
    schema: dict[str, Any] = TypeAdapter(union).json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
