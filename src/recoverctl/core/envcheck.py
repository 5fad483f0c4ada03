"""Checks of a stack's env file (.env / .env.production) for `recoverctl doctor`.

Pure: the caller reads the file (python-dotenv's dotenv_values for the mapping, the
raw text for what the parser hides: line endings, bad lines, duplicates) and stats it.
Each rule returns an unnamed Finding: doctor's registry (services/doctor/env.py) names it and
decides when it applies. `port` is the published one ("" if unknown).
Rules mirror what the vault's settings (vault/config/env.py) and Django enforce, so a
check fails here exactly when the backend would refuse to start or misbehave.

Secret values are never echoed, not even partly: evidence says "DJANGO_SECRET_KEY is
12 characters", never what they are. Host names, origins and DJANGO_DEBUG are shown.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from recoverctl.core.checks import FAIL, OK, WARN, Finding

Stack = Literal["dev", "prod"]
EnvValues = Mapping[str, str | None]

ENV_FILES: dict[str, str] = {"dev": ".env", "prod": ".env.production"}
REQUIRED = (
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
)
REQUIRED_DEV = (*REQUIRED, "DJANGO_CORS_ALLOWED_ORIGINS")
# Compared with .env.example's value as well: a copied example must not ship.
SECRET_VARIABLES = ("POSTGRES_PASSWORD", "DJANGO_SECRET_KEY")
# The markers the backend itself refuses (vault/config/env.py), case-insensitive.
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me")
MIN_SECRET_KEY_LENGTH = 50  # Django's own deploy check (security.W009) and the backend's
MIN_SECRET_KEY_DISTINCT = 5  # Django's security.W009
MIN_SECRET_KEY_BITS = 128
INSECURE_PREFIX = "django-insecure-"
DEV_FRONTEND_ORIGIN = "http://localhost:5173"
# Both names reach the loopback address the stacks publish on.
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
_TRUE = frozenset({"1", "true", "yes", "on"})  # vault/config/env.py's env_bool
_FALSE = frozenset({"0", "false", "no", "off", ""})
_KEY_RE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$")
_MAX_LINES_SHOWN = 10


def check_env_mode(mode: int, source: str = ".env") -> Finding:
    """The file holds the database password and Django's key: owner-only access."""
    perms = mode & 0o777
    who = [name for name, bits in (("group", 0o070), ("others", 0o007)) if mode & bits]
    if who:
        return Finding(
            FAIL,
            f"{source} is mode {perms:04o}: {' and '.join(who)} can access it, and it holds "
            "the database password and DJANGO_SECRET_KEY",
            f"chmod 600 {source}",
        )
    return Finding(OK, f"{source} is mode {perms:04o} (owner only)")


# --- file format -----------------------------------------------------------------------


def check_line_endings(text: str, source: str) -> Finding:
    crlf = text.count("\r\n")
    if crlf:
        total = len(text.splitlines())
        return Finding(
            FAIL,
            f"{crlf} of {total} lines end in CRLF (Windows line endings): "
            "a stray \\r can end up at the end of values",
            f"convert {source} to LF line endings: sed -i 's/\\r$//' {source}",
        )
    return Finding(OK, "LF line endings")


def check_syntax(text: str, source: str) -> Finding:
    bad, _ = _scan(text)
    if bad:
        # Line numbers only: a malformed line may well be a half-typed password.
        return Finding(
            FAIL,
            f"{_line_list(bad)} not NAME=value, a comment or blank",
            f"fix or remove those lines in {source} (one NAME=value per line)",
        )
    return Finding(OK, "every line is NAME=value, a comment or blank")


def check_duplicates(text: str, source: str) -> Finding:
    _, assignments = _scan(text)
    lines_of: dict[str, list[int]] = {}
    for name, line in assignments:
        lines_of.setdefault(name, []).append(line)
    duplicated = {name: lines for name, lines in lines_of.items() if len(lines) > 1}
    if duplicated:
        listed = "; ".join(
            f"{name} on lines {', '.join(map(str, lines))}"
            for name, lines in sorted(duplicated.items())
        )
        return Finding(
            WARN,
            f"set more than once: {listed} (the last one wins)",
            f"keep one line per variable in {source}",
        )
    return Finding(OK, "no variable is set twice")


# --- contents --------------------------------------------------------------------------


def check_required(values: EnvValues, stack: Stack, source: str) -> Finding:
    required = REQUIRED_DEV if stack == "dev" else REQUIRED
    missing = [name for name in required if not _value(values, name)]
    if missing:
        names = ", ".join(missing)
        return Finding(
            FAIL,
            f"missing or empty: {names}",
            f"set {names} in {source} (see .env.example)",
        )
    return Finding(OK, f"all {len(required)} required variables are set")


def check_placeholders(values: EnvValues, example: EnvValues, stack: Stack, source: str) -> Finding:
    found = []
    for name in sorted(values):
        value = _value(values, name)
        if not value:
            continue
        lowered = value.lower()
        copied = name in SECRET_VARIABLES and value == _value(example, name)
        if copied or any(marker in lowered for marker in PLACEHOLDER_MARKERS):
            found.append(name)
    if found:
        return Finding(
            FAIL if stack == "prod" else WARN,
            f"still a .env.example placeholder: {', '.join(found)}",
            f"put real values for them in {source} (random ones for passwords and keys)",
        )
    return Finding(OK, "no .env.example placeholder left")


def check_secret_key(values: EnvValues, stack: Stack, source: str) -> Finding:
    key = _value(values, "DJANGO_SECRET_KEY")
    debug = _debug_flag(values)
    # With DEBUG off the backend applies the production rules even in dev and refuses to
    # start: that is a failure there too, not advice.
    strict = stack == "prod" or debug is False
    problems = []
    if not key:
        problems.append("is not set")
    else:
        if key.startswith(INSECURE_PREFIX):
            problems.append(f"starts with {INSECURE_PREFIX}")
        if len(key) < MIN_SECRET_KEY_LENGTH:
            problems.append(f"is {len(key)} characters, {MIN_SECRET_KEY_LENGTH} needed")
        distinct = len(set(key))
        if distinct < MIN_SECRET_KEY_DISTINCT:
            problems.append(
                f"uses {distinct} distinct characters, {MIN_SECRET_KEY_DISTINCT} needed"
            )
        bits = int(estimate_entropy_bits(key))
        # The finer test, reported alone: a short key is weak for the obvious reason.
        if not problems and bits < MIN_SECRET_KEY_BITS:
            problems.append(f"has about {bits} bits of entropy, {MIN_SECRET_KEY_BITS} needed")
    if not problems:
        return Finding(
            OK,
            f"DJANGO_SECRET_KEY is {len(key)} characters, "
            f"about {int(estimate_entropy_bits(key))} bits of entropy",
        )
    if stack == "prod":
        why = "production refuses it"
    elif strict:
        why = "DJANGO_DEBUG is off, so the backend applies production rules and refuses it"
    else:
        why = "tolerated in dev with DJANGO_DEBUG on; production refuses it"
    return Finding(
        FAIL if strict else WARN,
        f"DJANGO_SECRET_KEY {'; '.join(problems)} ({why})",
        'generate one with python3 -c "import secrets; print(secrets.token_urlsafe(50))", '
        f"put it in DJANGO_SECRET_KEY in {source}, then restart the stack",
    )


def check_debug(values: EnvValues, stack: Stack, source: str) -> Finding:
    raw = values.get("DJANGO_DEBUG")
    flag = _debug_flag(values)
    shown = _short(raw.strip()) if raw is not None else ""
    if flag is None:
        evidence = f"DJANGO_DEBUG={shown} is not true/false or 1/0"
        if stack == "prod":
            return Finding(
                WARN,
                f"{evidence} (the prod compose file forces it off anyway)",
                f"set DJANGO_DEBUG=false in {source}",
            )
        return Finding(
            FAIL,
            f"{evidence}: the backend refuses to start",
            f"set DJANGO_DEBUG=true in {source}",
        )
    if stack == "prod":
        if flag:
            # The compose file overrides it, but a file that says debug is on misleads
            # whoever reads it, and is one copy-paste away from a debug deployment.
            return Finding(
                FAIL,
                f"DJANGO_DEBUG={shown} in {source}: the prod compose file forces it off, "
                "but the file says otherwise",
                f"set DJANGO_DEBUG=false in {source}",
            )
        return Finding(OK, "DJANGO_DEBUG is off")
    if flag:
        return Finding(OK, "DJANGO_DEBUG is on (dev)")
    return Finding(
        OK,
        "DJANGO_DEBUG is off: the dev backend applies production rules to DJANGO_SECRET_KEY",
    )


def check_allowed_hosts(values: EnvValues, host: str, port: str, source: str) -> Finding:
    hosts = _list(values, "DJANGO_ALLOWED_HOSTS")
    names = _host_names(host)
    matched = [h for h in hosts if any(_allowed_host_matches(h, name) for name in names)]
    if matched:
        what = "every host (*)" if matched[0] == "*" else matched[0]
        return Finding(
            OK,
            f"DJANGO_ALLOWED_HOSTS allows {what}, the published address",
        )
    listed = " nor ".join(names)
    seen = "is empty" if not hosts else f"has neither {listed}"
    return Finding(
        FAIL,
        f"DJANGO_ALLOWED_HOSTS {seen}: requests to {_url(host, port)} get 400 Bad Request",
        f"add {','.join(names)} to DJANGO_ALLOWED_HOSTS in {source}",
    )


def check_csrf_origins(values: EnvValues, host: str, port: str, source: str) -> Finding:
    origins = _list(values, "DJANGO_CSRF_TRUSTED_ORIGINS")
    fix = f"add {_url(host, port)} to DJANGO_CSRF_TRUSTED_ORIGINS in {source}"
    no_scheme = [o for o in origins if "://" not in o]
    if no_scheme:
        # Django 4.0+ refuses to start (4_0.E001) rather than guess a scheme.
        return Finding(
            FAIL,
            f"origins without a scheme: {', '.join(no_scheme)} (Django 4+ needs scheme://host)",
            f"write each origin as http://host:port in DJANGO_CSRF_TRUSTED_ORIGINS in {source}",
        )
    if not origins:
        return Finding(FAIL, "DJANGO_CSRF_TRUSTED_ORIGINS is empty", fix)
    names = _host_names(host)
    host_only: list[str] = []
    for origin in origins:
        try:
            parts = urlsplit(origin)
        except ValueError:  # "http://[::1:8000": an unclosed IPv6 bracket never matches
            continue
        if parts.scheme not in ("http", "https") or (parts.hostname or "") not in names:
            continue
        if not port.isdigit():
            return Finding(
                OK,
                f"DJANGO_CSRF_TRUSTED_ORIGINS has {origin} (the published port is unknown, "
                "so only the host was compared)",
            )
        if _origin_port(parts) == int(port):
            return Finding(OK, f"DJANGO_CSRF_TRUSTED_ORIGINS has {origin}")
        host_only.append(origin)
    if host_only:
        return Finding(
            WARN,
            f"DJANGO_CSRF_TRUSTED_ORIGINS has {', '.join(host_only)}, but the stack publishes "
            f"on port {port}: POSTs through {_url(host, port)} get 403",
            fix,
        )
    return Finding(
        FAIL,
        f"no trusted origin for the published address {_url(host, port)}: "
        "admin logins and API POSTs get 403 (CSRF)",
        fix,
    )


def check_cors_origins(values: EnvValues, source: str) -> Finding:
    # django-cors-headers compares origins as exact strings.
    if DEV_FRONTEND_ORIGIN in _list(values, "DJANGO_CORS_ALLOWED_ORIGINS"):
        return Finding(OK, f"DJANGO_CORS_ALLOWED_ORIGINS has {DEV_FRONTEND_ORIGIN}")
    return Finding(
        WARN,
        f"DJANGO_CORS_ALLOWED_ORIGINS lacks {DEV_FRONTEND_ORIGIN} (the dev front end): "
        "its API calls are blocked by CORS",
        f"add {DEV_FRONTEND_ORIGIN} to DJANGO_CORS_ALLOWED_ORIGINS in {source}",
    )


def estimate_entropy_bits(value: str) -> float:
    """A conservative estimate of a secret's strength, in bits.

    The lower of two estimates: character frequencies (Shannon entropy times length)
    misses repeated patterns, which compression catches ("abcdefghij" * 6 has ten
    distinct characters but compresses to a few bytes).
    """
    if not value:
        return 0.0
    counts = Counter(value)
    length = len(value)
    shannon = -sum(n / length * math.log2(n / length) for n in counts.values()) * length
    overhead = len(zlib.compress(b"", 9))
    compressed = max(0, len(zlib.compress(value.encode("utf-8"), 9)) - overhead) * 8
    return min(shannon, float(compressed))


# --- helpers -------------------------------------------------------------------------------


def _value(values: EnvValues, name: str) -> str:
    return (values.get(name) or "").strip()


def _list(values: EnvValues, name: str) -> list[str]:
    # As the backend splits them (vault/config/env.py env_list).
    return [item.strip() for item in _value(values, name).split(",") if item.strip()]


def _debug_flag(values: EnvValues) -> bool | None:
    """DJANGO_DEBUG as the backend reads it: True, False (also when unset), None if invalid."""
    raw = values.get("DJANGO_DEBUG")
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _host_names(host: str) -> tuple[str, ...]:
    host = host.lower()
    return LOOPBACK_NAMES if host in LOOPBACK_NAMES else (host,)


def _allowed_host_matches(pattern: str, host: str) -> bool:
    # Django's validate_host: "*", ".example.com" (domain and subdomains), or exact.
    pattern = pattern.lower()
    if pattern == "*":
        return True
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return pattern == host


def _origin_port(parts: SplitResult) -> int | None:
    try:
        explicit = parts.port
    except ValueError:  # "http://host:abc": never matches
        return None
    return explicit if explicit is not None else {"http": 80, "https": 443}[parts.scheme]


def _url(host: str, port: str) -> str:
    return f"http://{host}:{port}" if port else f"http://{host}:<published port>"


def _line_list(lines: Sequence[int]) -> str:
    shown = ", ".join(map(str, lines[:_MAX_LINES_SHOWN]))
    more = f" and {len(lines) - _MAX_LINES_SHOWN} more" if len(lines) > _MAX_LINES_SHOWN else ""
    return f"line {shown} is" if len(lines) == 1 else f"lines {shown}{more} are"


def _scan(text: str) -> tuple[list[int], list[tuple[str, int]]]:
    """Line numbers that are not assignments, and (name, line) of every assignment.

    Follows python-dotenv's grammar closely enough: optional `export`, quoted values
    that may span lines (a line inside one is not malformed), trailing comments.
    """
    lines = [line.rstrip("\r") for line in text.split("\n")]
    bad: list[int] = []
    assignments: list[tuple[str, int]] = []
    i = 0
    while i < len(lines):
        number = i + 1
        stripped = lines[i].strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        match = _KEY_RE.match(stripped)
        if not match:
            bad.append(number)
            continue
        assignments.append((match.group(1), number))
        value = match.group(2)
        if value[:1] not in ("'", '"'):
            continue
        quote, rest = value[0], value[1:]
        end = _closing_quote(rest, quote)
        while end is None and i < len(lines):
            rest = lines[i]
            i += 1
            end = _closing_quote(rest, quote)
        if end is None:
            bad.append(number)  # the quote never closes: everything after it is swallowed
            continue
        after = rest[end + 1 :].strip()
        if after and not after.startswith("#"):
            bad.append(number)
    return bad, assignments


def _closing_quote(text: str, quote: str) -> int | None:
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == quote:
            return index
    return None
