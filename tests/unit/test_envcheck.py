"""Env file checks: one good file per stack, then one damage per check, with exact words."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv import dotenv_values

from recoverctl.core.checks import Check, Finding, worst
from recoverctl.core.envcheck import (
    ENV_FILES,
    Stack,
    check_env_mode,
    estimate_entropy_bits,
)
from recoverctl.services import doctor
from recoverctl.services.doctor.framework import EnvFile

EXAMPLE_PATH = Path(__file__).parents[2] / ".env.example"
PG_PASSWORD = "Pg9-qL2x-Vt7w-Rz4k-Hs8m"
SECRET_KEY = "erKfjSYT0puObTLsydluuTZcY4HL8uBMM5jZvbOBJGpXDJYGwTlTppiLO8UhdhKL8Oo"
SECRETS = (PG_PASSWORD, SECRET_KEY)

GOOD_DEV = f"""\
# vault dev settings
POSTGRES_DB=vault
POSTGRES_USER=vault
POSTGRES_PASSWORD={PG_PASSWORD}

DJANGO_SECRET_KEY={SECRET_KEY}
DJANGO_DEBUG=true
DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1
DJANGO_CSRF_TRUSTED_ORIGINS=http://localhost:8000,http://127.0.0.1:8000
DJANGO_CORS_ALLOWED_ORIGINS=http://localhost:5173
VAULT_HTTP_PORT=8000
"""

GOOD_PROD = f"""\
POSTGRES_DB=vault
POSTGRES_USER=vault
POSTGRES_PASSWORD="{PG_PASSWORD}"
DJANGO_SECRET_KEY='{SECRET_KEY}'
DJANGO_DEBUG=false
DJANGO_ALLOWED_HOSTS=vault.example.com,127.0.0.1
DJANGO_CSRF_TRUSTED_ORIGINS=https://vault.example.com,http://127.0.0.1:8080
DJANGO_SECURE_COOKIES=true
"""


def assert_no_secret(check: Check | Finding) -> None:
    """Not the value, and not any 6 characters of it, in what a person or a log sees."""
    text = check.evidence + " " + check.fix
    for secret in SECRETS:
        for start in range(len(secret) - 5):
            assert secret[start : start + 6] not in text, check


def example() -> dict[str, str | None]:
    return dict(dotenv_values(EXAMPLE_PATH))


class EnvOnly(doctor.Context):
    """A doctor context that knows an env file and a port: all the file's rules read."""

    def __init__(self, env: EnvFile, port: str) -> None:
        self._env = env
        self._port = port

    def env(self) -> EnvFile:
        return self._env

    def env_port(self) -> str:
        return self._port


# The env group's rules on the file alone, as doctor runs and names them.
FILE_RULES = [
    s for s in doctor.REGISTRY if s.group == "env" and set(s.all_needs) <= {doctor.Need.ENV_FILE}
]


def run(
    text: str, stack: Stack = "dev", port: str = "8000", *, ex: dict[str, str | None] | None = None
) -> dict[str, Check]:
    env = EnvFile(
        source=ENV_FILES[stack],
        text=text,
        values=dotenv_values(stream=io.StringIO(text)),
        example=example() if ex is None else ex,
        mode=0o100600,
        stack=stack,
    )
    checks = doctor.run_checks(EnvOnly(env, port), FILE_RULES)
    for check in checks:
        assert_no_secret(check)
    names = [c.name for c in checks]
    assert len(names) == len(set(names))
    return {c.name: c for c in checks}


def replace(text: str, name: str, line: str | None) -> str:
    """The text with the line setting `name` replaced (or removed when line is None)."""
    out = []
    for current in text.splitlines(keepends=True):
        if current.startswith(f"{name}="):
            if line is not None:
                out.append(line + "\n")
        else:
            out.append(current)
    return "".join(out)


# --- the good files --------------------------------------------------------------------


def test_good_dev_file_passes_every_check() -> None:
    checks = run(GOOD_DEV)
    assert {name: c.status for name, c in checks.items()} == {
        "env.file": "ok",
        "env.mode": "ok",
        "env.line_endings": "ok",
        "env.syntax": "ok",
        "env.duplicates": "ok",
        "env.required": "ok",
        "env.placeholders": "ok",
        "env.secret_key": "ok",
        "env.debug": "ok",
        "env.allowed_hosts": "ok",
        "env.csrf_origins": "ok",
        "env.cors_origins": "ok",
        "env.key_location": "ok",
    }
    assert worst(checks.values()) == "ok"
    assert checks["env.secret_key"].evidence == (
        "DJANGO_SECRET_KEY is 67 characters, about 331 bits of entropy"
    )
    assert checks["env.csrf_origins"].evidence == (
        "DJANGO_CSRF_TRUSTED_ORIGINS has http://localhost:8000"
    )
    assert all(c.fix == "" for c in checks.values())


def test_good_prod_file_passes_every_check() -> None:
    checks = run(GOOD_PROD, "prod", "8080")
    assert worst(checks.values()) == "ok", [c for c in checks.values() if c.status != "ok"]
    # CORS is a dev-only concern, and not required in prod.
    assert "env.cors_origins" not in checks
    assert checks["env.required"].evidence == "all 6 required variables are set"


def test_the_example_copied_as_is() -> None:
    text = EXAMPLE_PATH.read_text(encoding="utf-8")
    dev = run(text)
    assert dev["env.placeholders"].status == "warn"
    assert dev["env.placeholders"].evidence == (
        "still a .env.example placeholder: DJANGO_SECRET_KEY, POSTGRES_PASSWORD"
    )
    assert dev["env.secret_key"].status == "warn"
    assert dev["env.syntax"].status == "ok"  # its comments and commented-out lines parse
    prod = run(text, "prod", "8080")
    assert prod["env.placeholders"].status == "fail"
    assert prod["env.placeholders"].fix == (
        "put real values for them in .env.production (random ones for passwords and keys)"
    )
    assert prod["env.secret_key"].status == "fail"
    assert prod["env.debug"].status == "fail"


# --- required -------------------------------------------------------------------------------


def test_required_missing_or_empty() -> None:
    text = replace(GOOD_DEV, "POSTGRES_PASSWORD", None)
    text = replace(text, "DJANGO_ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS=")
    text = replace(text, "DJANGO_CORS_ALLOWED_ORIGINS", None)
    check = run(text)["env.required"]
    assert check.status == "fail"
    assert check.evidence == (
        "missing or empty: POSTGRES_PASSWORD, DJANGO_ALLOWED_HOSTS, DJANGO_CORS_ALLOWED_ORIGINS"
    )
    assert check.fix == (
        "set POSTGRES_PASSWORD, DJANGO_ALLOWED_HOSTS, DJANGO_CORS_ALLOWED_ORIGINS in .env "
        "(see .env.example)"
    )


def test_required_counts_a_bare_name_as_missing() -> None:
    text = replace(GOOD_PROD, "POSTGRES_USER", "POSTGRES_USER")
    assert run(text, "prod", "8080")["env.required"].evidence == "missing or empty: POSTGRES_USER"


# --- placeholders ----------------------------------------------------------------------------


def test_placeholder_marker_anywhere_any_case() -> None:
    text = replace(GOOD_DEV, "POSTGRES_USER", "POSTGRES_USER=CHANGEME")
    dev = run(text)["env.placeholders"]
    assert (dev.status, dev.evidence) == ("warn", "still a .env.example placeholder: POSTGRES_USER")
    prod_text = replace(GOOD_PROD, "POSTGRES_USER", "POSTGRES_USER=change-me-user")
    assert run(prod_text, "prod", "8080")["env.placeholders"].status == "fail"


def test_secret_equal_to_the_example_value() -> None:
    ex: dict[str, str | None] = {"POSTGRES_PASSWORD": PG_PASSWORD, "POSTGRES_DB": "vault"}
    check = run(GOOD_DEV, ex=ex)["env.placeholders"]
    # POSTGRES_DB=vault also equals the example, but a database name is not a secret.
    assert check.evidence == "still a .env.example placeholder: POSTGRES_PASSWORD"


# --- DJANGO_SECRET_KEY ------------------------------------------------------------------------


def secret_key_check(key: str, stack: Stack = "prod", debug: str = "false") -> Check:
    base = GOOD_PROD if stack == "prod" else GOOD_DEV
    text = replace(base, "DJANGO_SECRET_KEY", f"DJANGO_SECRET_KEY={key}")
    text = replace(text, "DJANGO_DEBUG", f"DJANGO_DEBUG={debug}")
    check = run(text, stack, "8080" if stack == "prod" else "8000")["env.secret_key"]
    assert key[-6:] not in check.evidence + check.fix
    return check


def test_secret_key_too_short_in_prod() -> None:
    check = secret_key_check("Zq8-short-but-random")
    assert check.status == "fail"
    assert check.evidence == (
        "DJANGO_SECRET_KEY is 20 characters, 50 needed (production refuses it)"
    )
    assert check.fix == (
        'generate one with python3 -c "import secrets; print(secrets.token_urlsafe(50))", '
        "put it in DJANGO_SECRET_KEY in .env.production, then restart the stack"
    )


def test_secret_key_django_insecure_prefix() -> None:
    check = secret_key_check("django-insecure-" + SECRET_KEY[:40])
    assert check.status == "fail"
    assert check.evidence == (
        "DJANGO_SECRET_KEY starts with django-insecure- (production refuses it)"
    )


def test_secret_key_too_few_distinct_characters() -> None:
    check = secret_key_check("ab" * 30)
    assert check.evidence == (
        "DJANGO_SECRET_KEY uses 2 distinct characters, 5 needed (production refuses it)"
    )


def test_secret_key_repeated_pattern_has_low_entropy() -> None:
    check = secret_key_check("abcdefghij" * 6)
    assert check.status == "fail"
    assert check.evidence == (
        "DJANGO_SECRET_KEY has about 104 bits of entropy, 128 needed (production refuses it)"
    )


def test_secret_key_is_advice_in_dev_with_debug_on() -> None:
    check = secret_key_check("short", "dev", "true")
    assert check.status == "warn"
    assert check.evidence == (
        "DJANGO_SECRET_KEY is 5 characters, 50 needed "
        "(tolerated in dev with DJANGO_DEBUG on; production refuses it)"
    )


def test_secret_key_fails_in_dev_with_debug_off() -> None:
    # vault/config/settings.py checks the key whenever DEBUG is off, whatever the stack.
    check = secret_key_check("short", "dev", "false")
    assert check.status == "fail"
    assert check.evidence.endswith(
        "(DJANGO_DEBUG is off, so the backend applies production rules and refuses it)"
    )


def test_entropy_estimate() -> None:
    assert estimate_entropy_bits("") == 0
    assert estimate_entropy_bits("x" * 60) == 0
    assert estimate_entropy_bits(SECRET_KEY) > 300
    assert estimate_entropy_bits("abcdefghij" * 6) < 128  # compression sees the repetition


# --- DJANGO_DEBUG -------------------------------------------------------------------------------


def test_debug_on_in_prod_fails_even_though_compose_forces_it_off() -> None:
    text = replace(GOOD_PROD, "DJANGO_DEBUG", "DJANGO_DEBUG=True")
    check = run(text, "prod", "8080")["env.debug"]
    assert check.status == "fail"
    assert check.evidence == (
        "DJANGO_DEBUG=True in .env.production: the prod compose file forces it off, "
        "but the file says otherwise"
    )
    assert check.fix == "set DJANGO_DEBUG=false in .env.production"


def test_debug_unset_in_prod_is_off() -> None:
    text = replace(GOOD_PROD, "DJANGO_DEBUG", None)
    assert run(text, "prod", "8080")["env.debug"].evidence == "DJANGO_DEBUG is off"


def test_debug_not_a_boolean() -> None:
    text = replace(GOOD_DEV, "DJANGO_DEBUG", "DJANGO_DEBUG=maybe")
    dev = run(text)["env.debug"]
    assert (dev.status, dev.evidence) == (
        "fail",
        "DJANGO_DEBUG=maybe is not true/false or 1/0: the backend refuses to start",
    )
    prod_text = replace(GOOD_PROD, "DJANGO_DEBUG", "DJANGO_DEBUG=maybe")
    assert run(prod_text, "prod", "8080")["env.debug"].status == "warn"


def test_debug_off_in_dev_is_fine_but_said() -> None:
    check = run(replace(GOOD_DEV, "DJANGO_DEBUG", "DJANGO_DEBUG=0"))["env.debug"]
    assert check.status == "ok"
    assert "production rules" in check.evidence


# --- hosts and origins ---------------------------------------------------------------------------


def hosts_text(allowed: str, csrf: str = "http://127.0.0.1:8000") -> str:
    text = replace(GOOD_DEV, "DJANGO_ALLOWED_HOSTS", f"DJANGO_ALLOWED_HOSTS={allowed}")
    return replace(text, "DJANGO_CSRF_TRUSTED_ORIGINS", f"DJANGO_CSRF_TRUSTED_ORIGINS={csrf}")


@pytest.mark.parametrize(
    "allowed", ["localhost", "127.0.0.1", " vault.lan , LOCALHOST", ".localhost"]
)
def test_allowed_hosts_with_a_published_name(allowed: str) -> None:
    assert run(hosts_text(allowed))["env.allowed_hosts"].status == "ok"


def test_allowed_hosts_wildcard_is_said() -> None:
    check = run(hosts_text("*"))["env.allowed_hosts"]
    assert (check.status, check.evidence) == (
        "ok",
        "DJANGO_ALLOWED_HOSTS allows every host (*), the published address",
    )


def test_allowed_hosts_without_the_published_host() -> None:
    check = run(hosts_text("vault.example.com"))["env.allowed_hosts"]
    assert check.status == "fail"
    assert check.evidence == (
        "DJANGO_ALLOWED_HOSTS has neither 127.0.0.1 nor localhost: "
        "requests to http://127.0.0.1:8000 get 400 Bad Request"
    )
    assert check.fix == "add 127.0.0.1,localhost to DJANGO_ALLOWED_HOSTS in .env"


def test_csrf_origin_on_another_port_is_a_warning() -> None:
    check = run(hosts_text("localhost", "http://localhost:9000"))["env.csrf_origins"]
    assert check.status == "warn"
    assert check.evidence == (
        "DJANGO_CSRF_TRUSTED_ORIGINS has http://localhost:9000, but the stack publishes on "
        "port 8000: POSTs through http://127.0.0.1:8000 get 403"
    )
    assert check.fix == "add http://127.0.0.1:8000 to DJANGO_CSRF_TRUSTED_ORIGINS in .env"


def test_csrf_origin_for_another_host_fails() -> None:
    check = run(hosts_text("localhost", "https://vault.example.com"))["env.csrf_origins"]
    assert check.status == "fail"
    assert check.evidence == (
        "no trusted origin for the published address http://127.0.0.1:8000: "
        "admin logins and API POSTs get 403 (CSRF)"
    )


def test_csrf_origin_without_scheme_fails() -> None:
    check = run(hosts_text("localhost", "127.0.0.1:8000,http://localhost:8000"))["env.csrf_origins"]
    assert check.status == "fail"
    assert check.evidence == (
        "origins without a scheme: 127.0.0.1:8000 (Django 4+ needs scheme://host)"
    )


def test_csrf_origin_default_port_and_unknown_port() -> None:
    text = hosts_text("localhost", "http://localhost")
    assert run(text, port="80")["env.csrf_origins"].status == "ok"
    assert run(text, port="8000")["env.csrf_origins"].status == "warn"
    unknown = run(text, port="")["env.csrf_origins"]
    assert unknown.status == "ok"
    assert "published port is unknown" in unknown.evidence
    # Django never matches an origin whose port is not a number: only the host counts.
    bad_port = run(hosts_text("localhost", "http://localhost:80a"))["env.csrf_origins"]
    assert bad_port.status == "warn"


def test_cors_without_the_dev_front_end() -> None:
    text = replace(
        GOOD_DEV, "DJANGO_CORS_ALLOWED_ORIGINS", "DJANGO_CORS_ALLOWED_ORIGINS=http://localhost:3000"
    )
    check = run(text)["env.cors_origins"]
    assert check.status == "warn"
    assert check.evidence == (
        "DJANGO_CORS_ALLOWED_ORIGINS lacks http://localhost:5173 (the dev front end): "
        "its API calls are blocked by CORS"
    )


# --- file format ----------------------------------------------------------------------------------


def test_crlf_line_endings() -> None:
    text = GOOD_DEV.replace("\n", "\r\n")
    check = run(text)["env.line_endings"]
    assert check.status == "fail"
    assert check.evidence == (
        "11 of 11 lines end in CRLF (Windows line endings): "
        "a stray \\r can end up at the end of values"
    )
    assert check.fix == "convert .env to LF line endings: sed -i 's/\\r$//' .env"
    assert run(text)["env.syntax"].status == "ok"  # one problem, reported once


def test_malformed_lines_are_reported_by_number_only() -> None:
    text = GOOD_DEV + f"{PG_PASSWORD}\nexport DJANGO_DEBUG\nNOTE='never closed\n"
    check = run(text)["env.syntax"]
    assert check.status == "fail"
    assert check.evidence == "lines 12, 13, 14 are not NAME=value, a comment or blank"
    assert check.fix == "fix or remove those lines in .env (one NAME=value per line)"


def test_text_after_a_closing_quote_is_malformed() -> None:
    check = run(GOOD_DEV + 'GREETING="hello" world\n')["env.syntax"]
    assert check.evidence == "line 12 is not NAME=value, a comment or blank"


def test_valid_dotenv_shapes_are_not_malformed() -> None:
    extra = (
        "export EXPORTED=1\n"
        '  INDENTED = "spaces around" # a comment\n'
        'MULTILINE="first\n'
        "second line = with an equals sign\n"
        'last \\" escaped quote"\n'
        "SINGLE='single # not a comment'\n"
        "EMPTY=\n"
    )
    assert run(GOOD_DEV + extra)["env.syntax"].status == "ok"


def test_many_malformed_lines_are_capped() -> None:
    check = run(GOOD_DEV + "oops\n" * 15)["env.syntax"]
    assert check.evidence == (
        "lines 12, 13, 14, 15, 16, 17, 18, 19, 20, 21 and 5 more are not NAME=value, "
        "a comment or blank"
    )


def test_duplicate_keys() -> None:
    text = GOOD_DEV + "DJANGO_DEBUG=false\nPOSTGRES_DB=other\n"
    check = run(text)["env.duplicates"]
    assert check.status == "warn"
    assert check.evidence == (
        "set more than once: DJANGO_DEBUG on lines 7, 12; POSTGRES_DB on lines 2, 13 "
        "(the last one wins)"
    )
    assert check.fix == "keep one line per variable in .env"


# --- file mode --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o100600])
def test_owner_only_mode(mode: int) -> None:
    check = check_env_mode(mode, ".env.production")
    assert_no_secret(check)
    assert check.status == "ok"


@pytest.mark.parametrize(
    ("mode", "who"), [(0o640, "group"), (0o604, "others"), (0o100644, "group and others")]
)
def test_mode_open_to_others(mode: int, who: str) -> None:
    check = check_env_mode(mode, ".env.production")
    assert_no_secret(check)
    assert check.status == "fail"
    assert check.evidence == (
        f".env.production is mode {mode & 0o777:04o}: {who} can access it, and it holds "
        "the database password and DJANGO_SECRET_KEY"
    )
    assert check.fix == "chmod 600 .env.production"


# --- Check itself ---------------------------------------------------------------------------------


def test_check_is_one_line_and_knows_its_status() -> None:
    # Evidence may quote what a file held (a multi-line value): it is made one line.
    assert Check("x", "ok", "two\nlines\r\n", "a\nb").evidence == "two lines"
    assert Check("x", "ok", "e", "a\nb").fix == "a b"
    with pytest.raises(ValueError, match="unknown check status"):
        Check("x", "bad", "evidence")  # type: ignore[arg-type]
    check = Check("env.mode", "fail", "mode 0644", "chmod 600 .env")
    assert check.to_json() == {
        "name": "env.mode",
        "status": "fail",
        "evidence": "mode 0644",
        "fix": "chmod 600 .env",
    }
    assert Check("a", "ok", "fine").to_json()["fix"] is None


def test_worst() -> None:
    ok, warn, fail = Check("a", "ok", "e"), Check("b", "warn", "e"), Check("c", "fail", "e")
    assert worst([]) == "ok"
    assert worst([ok, warn]) == "warn"
    assert worst([fail, ok, warn]) == "fail"
