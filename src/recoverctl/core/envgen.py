"""A stack's env file, written from .env.example for `recoverctl init`. Pure: the caller
reads the template and the compose file, asks the engine which images exist, and passes
the random source.

Which variables are secrets is decided by their name (SECRET_NAME), so a secret added to
.env.example later (SMTP_PASSWORD, SENTRY_TOKEN) gets a random value with no change here.
A placeholder left in a variable that is not a secret by name cannot be invented: it is
reported for the person to fill in (doctor fails it in prod).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Stack = Literal["dev", "prod"]
ImageSource = Literal["official", "local", "unknown"]

# Ends in PASSWORD, PASSWD, SECRET, TOKEN or _KEY: DJANGO_SECRET_KEY, POSTGRES_PASSWORD,
# AWS_SECRET_ACCESS_KEY. Anchored at the end so that POSTGRES_PASSWORD_FILE (a path) or
# RECOVERCTL_KEY_FILE is not mistaken for one.
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_KEY)$", re.I)
# vault/config/env.py refuses these in DJANGO_SECRET_KEY; doctor looks for them everywhere.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me")
DEFAULT_PORTS: dict[Stack, int] = {"dev": 8000, "prod": 8080}
LOOPBACK = ("localhost", "127.0.0.1")
IMAGE_VARIABLES = ("POSTGRES_IMAGE", "PYTHON_IMAGE")
# What scripts/test-env.sh builds from Debian packages where no registry answers (a unit
# test keeps the two in step).
LOCAL_IMAGES: dict[str, str] = {
    "POSTGRES_IMAGE": "recoverctl-test/postgres:17",
    "PYTHON_IMAGE": "recoverctl-test/python:3.11",
}
# New stacks get this major, written in the env file whichever image serves it: the compose
# file's default stays what existing installations started on (their data directory's
# major), and official images past 17 also move their data directory.
NEW_POSTGRES_IMAGE = "postgres:17"
_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_COMMENTED = re.compile(r"^#\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)=")
# ASCII only (\d matches any script's digits), and \Z: `$` lets a final newline through.
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}\Z")


class InvalidHost(ValueError):
    """A --host value that is not a bare host name; the message says what to pass."""


def is_secret(name: str) -> bool:
    return SECRET_NAME.search(name) is not None


def is_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def check_host(raw: str) -> str:
    """A host name or IPv4 address as Django's ALLOWED_HOSTS takes it, lower-cased."""
    host = raw.strip().lower().rstrip(".")
    if "://" in host or "/" in host:
        raise InvalidHost(f"{raw!r} is a URL: pass the bare host name, e.g. vault.example.com")
    if ":" in host:
        raise InvalidHost(f"{raw!r} has a port: pass the bare host name, without :PORT")
    if _IPV4.match(host):
        if all(0 <= int(part) <= 255 for part in host.split(".")):
            return host
        raise InvalidHost(f"{raw!r} is not an IPv4 address")
    labels = host.split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise InvalidHost(f"{raw!r} is not a host name (letters, digits, '-' and '.')")
    return host


def image_defaults(compose_text: str) -> dict[str, str]:
    """The compose file's own fallbacks, `${POSTGRES_IMAGE:-postgres:16}`: the official images."""
    found: dict[str, str] = {}
    for name in IMAGE_VARIABLES:
        match = re.search(r"\$\{" + name + r":?-([^}]+)\}", compose_text)
        if match:
            found[name] = match.group(1).strip()
    return found


@dataclass(frozen=True)
class ImageChoice:
    """Per variable, the image to set (None: leave unset, the compose file's official one)."""

    values: dict[str, str | None]
    source: ImageSource
    missing: tuple[str, ...] = ()  # local images chosen that are not built yet


def choose_images(
    official: Mapping[str, str], present: frozenset[str], registry: bool | None
) -> ImageChoice:
    """The official images where this machine has them or a registry answers, else the
    local ones (built by scripts/test-env.sh). registry None: not asked (the engine did
    not answer, or every official image is already here)."""
    if registry is None and not all(official.get(v) in present for v in IMAGE_VARIABLES):
        return ImageChoice({v: None for v in IMAGE_VARIABLES}, "unknown")
    values: dict[str, str | None] = {}
    missing: list[str] = []
    for variable in IMAGE_VARIABLES:
        if official.get(variable) in present or registry:
            values[variable] = None
            continue
        local = LOCAL_IMAGES[variable]
        values[variable] = local
        if local not in present:
            missing.append(local)
    source: ImageSource = "local" if any(values.values()) else "official"
    return ImageChoice(values, source, tuple(missing))


@dataclass(frozen=True)
class EnvPlan:
    """What init decides before it writes: the stack's hosts, origins and port."""

    stack: Stack
    port: int
    hosts: tuple[str, ...] = ()  # the names the vault is served at (prod, behind TLS)

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        # Loopback stays: the stacks publish on 127.0.0.1, and doctor probes it there.
        return (*self.hosts, *LOOPBACK)

    @property
    def csrf_origins(self) -> tuple[str, ...]:
        published = tuple(f"http://{name}:{self.port}" for name in LOOPBACK)
        return (*(f"https://{host}" for host in self.hosts), *published)

    def values(self) -> dict[str, str]:
        """The variables init sets whatever the template says."""
        prod = self.stack == "prod"
        values = {
            "DJANGO_DEBUG": "false" if prod else "true",
            "DJANGO_ALLOWED_HOSTS": ",".join(self.allowed_hosts),
            "DJANGO_CSRF_TRUSTED_ORIGINS": ",".join(self.csrf_origins),
            "VAULT_HTTP_PORT": str(self.port),
        }
        if prod:
            # Prod serves its pages itself, behind a TLS proxy: no dev front end, and
            # cookies only over HTTPS.
            values["DJANGO_CORS_ALLOWED_ORIGINS"] = ""
            values["DJANGO_SECURE_COOKIES"] = "true"
        return values


@dataclass(frozen=True)
class Generated:
    text: str
    secrets: tuple[str, ...]  # names given a random value; the values never leave `text`
    placeholders: tuple[str, ...]  # not secrets by name, still the template's placeholder


def render(
    template: str,
    plan: EnvPlan,
    images: Mapping[str, str | None],
    token: Callable[[], str],
    header: Sequence[str] = (),
) -> Generated:
    """The template with every secret random, the plan's values and the chosen images set.

    Comments and order are kept, so the file reads like .env.example; the template's
    leading comment block (how to copy it by hand) gives way to `header`."""
    lines = template.splitlines()
    start = 0
    while start < len(lines) and lines[start].startswith("#"):
        start += 1
    out = [*(f"# {line}" if line else "#" for line in header), *lines[start:]]
    wanted = {**plan.values(), **{k: v for k, v in images.items() if v is not None}}
    done: set[str] = set()
    secrets: list[str] = []
    placeholders: list[str] = []
    for index, line in enumerate(out):
        match = _ASSIGNMENT.match(line)
        if match:
            name, value = match.group("name"), match.group("value")
            if is_secret(name):
                out[index] = f"{name}={token()}"
                secrets.append(name)
            elif name in wanted:
                out[index] = f"{name}={wanted[name]}"
            elif is_placeholder(value):
                placeholders.append(name)
            done.add(name)
            continue
        commented = _COMMENTED.match(line)
        if commented and commented.group("name") in wanted and commented.group("name") not in done:
            name = commented.group("name")
            out[index] = f"{name}={wanted[name]}"
            done.add(name)
    extra = [f"{name}={value}" for name, value in wanted.items() if name not in done]
    if extra:
        out += ["", "# Set by recoverctl init.", *extra]
    return Generated("\n".join(out) + "\n", tuple(secrets), tuple(placeholders))


def with_values(text: str, values: Mapping[str, str | None]) -> str:
    """The env file's text with each variable set (its line replaced where it has one,
    else appended) or, for None, its line removed; every other line kept as it was.
    Values are written bare, so only values that need no quoting belong here (image and
    volume names)."""
    for name, value in values.items():
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.:/@+-]+", value):
            raise ValueError(f"{name}: {value!r} would need quoting in an env file")
    lines = text.splitlines()
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        found = _ASSIGNMENT.match(line.removeprefix("export ").strip())
        key = str(found["name"]) if found else ""
        if key in values:
            wanted = values[key]
            if key not in seen and wanted is not None:
                out.append(f"{key}={wanted}")
            seen.add(key)
            continue
        out.append(line)
    for key, value in values.items():
        if key not in seen and value is not None:
            out.append(f"{key}={value}")
    return "\n".join(out) + "\n"
