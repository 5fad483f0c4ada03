"""init: a stack's env file (.env, .env.production) written from .env.example, with random
secrets, the images this machine can run and, for prod, the host names it is served at.

The file is created mode 0600 under a temporary name and linked into place, so it is never
readable by others, never seen half-written, and never replaces a file that exists.
"""

from __future__ import annotations

import dataclasses
import errno
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recoverctl.adapters import fsio
from recoverctl.core import envgen
from recoverctl.core.envgen import EnvPlan, ImageChoice, InvalidHost
from recoverctl.core.result import JsonResult, computed, meta
from recoverctl.core.stack import StackName, prod_flag
from recoverctl.errors import EngineError, ErrorCode, RecoverctlError, UsageError
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

SECRET_BYTES = 48  # 64 URL-safe characters: past Django's 50, and no quoting in env files
TEMPLATE = ".env.example"


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


@dataclass(frozen=True)
class InitResult(JsonResult):
    path: Path
    stack: str = field(metadata=meta(schema=StackName))
    secrets: tuple[str, ...]  # the names given random values, never the values
    images: dict[str, str | None]  # None: the compose file's official image
    image_source: envgen.ImageSource
    allowed_hosts: tuple[str, ...]
    csrf_trusted_origins: tuple[str, ...]
    port: int
    next_steps: tuple[str, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    @computed(after="stack")
    def mode(self) -> Literal["0600"]:
        return "0600"  # the env file's, written so


def ensure_absent(settings: Settings) -> None:
    """Refuses before anything is asked or probed: init never overwrites an env file."""
    path = settings.env_file
    if path.exists() or path.is_symlink():
        raise _exists(path)


def _exists(path: Path) -> RecoverctlError:
    return RecoverctlError(
        f"{path.name} already exists in {path.parent}; init never overwrites it.",
        "Keep it (`recoverctl doctor --only env` checks it), or move it away and run init again.",
        code=ErrorCode.FILE_EXISTS,
    )


def init(
    session: StackSession,
    *,
    hosts: Sequence[str] = (),
    port: int | None = None,
    token: Callable[[], str] = new_secret,
) -> InitResult:
    settings = session.settings
    stack = settings.stack
    ensure_absent(settings)
    plan = EnvPlan(stack, port or envgen.DEFAULT_PORTS[stack], _hosts(stack, hosts))
    template = _read(settings.project_dir / TEMPLATE)
    official = {
        **envgen.image_defaults(_read(settings.compose_file)),
        "POSTGRES_IMAGE": envgen.NEW_POSTGRES_IMAGE,
    }
    choice, engine_warning = _images(session, official)
    # Pinned, official or local: the compose default would not move with new stacks.
    choice = dataclasses.replace(
        choice,
        values={
            **choice.values,
            "POSTGRES_IMAGE": choice.values["POSTGRES_IMAGE"] or envgen.NEW_POSTGRES_IMAGE,
        },
    )
    name = settings.env_file.name
    generated = envgen.render(
        template,
        plan,
        choice.values,
        token,
        header=(
            f"The vault's {stack} settings, written by `recoverctl init` from {TEMPLATE}.",
            "The secrets are random. Mode 600, never in git; keep a copy somewhere other than",
            "this server (playbook.md, section 0): the data cannot be served without it.",
        ),
    )
    _create_private(settings.env_file, generated.text)
    warnings = [w for w in (engine_warning,) if w]
    if choice.missing:
        warnings.append(
            f"{' and '.join(choice.missing)} not built yet and no registry answers: "
            "`make test-env` builds them (root, about two minutes)"
        )
    if generated.placeholders:
        names = ", ".join(generated.placeholders)
        warnings.append(f"{names} still hold the example's placeholder: set them in {name}")
    up = "recoverctl up" + prod_flag(stack)
    steps = [f"start the stack: {up}"]
    if plan.hosts:
        steps.append(
            f"serve https://{plan.hosts[0]} through a TLS proxy to http://127.0.0.1:{plan.port}"
        )
    steps.append(f"keep a copy of {name} somewhere other than this server")
    return InitResult(
        path=settings.env_file,
        stack=stack,
        secrets=generated.secrets,
        images={v: choice.values[v] or official.get(v) for v in envgen.IMAGE_VARIABLES},
        image_source=choice.source,
        allowed_hosts=plan.allowed_hosts,
        csrf_trusted_origins=plan.csrf_origins,
        port=plan.port,
        next_steps=tuple(steps),
        warnings=tuple(warnings),
    )


def _hosts(stack: str, hosts: Sequence[str]) -> tuple[str, ...]:
    if stack == "dev":
        if hosts:
            raise UsageError(
                "--host is for the prod stack: the dev stack answers on 127.0.0.1 only.",
                "Drop --host, or add --prod.",
            )
        return ()
    if not hosts:
        raise UsageError(
            "init --prod needs the host name the vault is served at.",
            "Pass --host NAME (repeatable), e.g. --host vault.example.com.",
        )
    checked: list[str] = []
    for raw in hosts:
        try:
            host = envgen.check_host(raw)
        except InvalidHost as exc:
            raise UsageError(
                f"--host {exc}.", "Pass --host NAME, e.g. --host vault.example.com."
            ) from None
        if host not in checked:
            checked.append(host)
    return tuple(checked)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise RecoverctlError(
            f"{path} is not UTF-8 (byte {exc.start}).",
            f"Save it as UTF-8, or restore it from git (`git checkout -- {path.name}`).",
            code=ErrorCode.ENV_INVALID,
        ) from None
    except OSError as exc:
        raise RecoverctlError(
            f"Cannot read {path}: {exc.strerror or exc}.",
            "init writes the env file from the checkout's .env.example and compose file: "
            "run it in a full checkout of the project.",
            code=ErrorCode.ENV_INVALID,
        ) from None


def _images(session: StackSession, official: dict[str, str]) -> tuple[ImageChoice, str | None]:
    wanted = {*official.values(), *envgen.LOCAL_IMAGES.values()}
    try:
        engine = session.engine
        present = frozenset(name for name in wanted if engine.has_image(name))
        absent = [official[v] for v in envgen.IMAGE_VARIABLES if official.get(v) not in present]
        # One probe says whether a registry answers; each image is not worth its own wait.
        registry = engine.can_pull(absent[0]) if absent else None
    except EngineError as exc:
        return envgen.choose_images(official, frozenset(), None), (
            f"could not ask the Docker engine which images this machine has ({exc.message.rstrip('.')}): "
            "the stack will use the official images; where no registry answers, `make test-env` "
            "builds local ones: set POSTGRES_IMAGE and PYTHON_IMAGE to the names it prints"
        )
    return envgen.choose_images(official, present, registry), None


def _create_private(path: Path, text: str) -> None:
    try:
        fsio.create_private(path, text.encode("utf-8"))
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        raise _write_failed(path, exc) from None


def _write_failed(path: Path, exc: OSError) -> RecoverctlError:
    return RecoverctlError(
        f"Could not write {path}: {exc.strerror or exc}; no env file was written.",
        f"Check that {path.parent} is writable and has room, then run init again.",
        code=ErrorCode.DISK_FULL if exc.errno == errno.ENOSPC else ErrorCode.WRITE_FAILED,
    )
