"""core/envgen.py: which variables are secrets, the images a machine can run, and the env
file init writes, checked against doctor's own env rules (core/envcheck.py)."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
from dotenv import dotenv_values

from recoverctl.core import envcheck, envgen
from recoverctl.core.checks import OK
from recoverctl.core.envgen import EnvPlan, InvalidHost

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = (REPO / ".env.example").read_text()
OFFICIAL = {"POSTGRES_IMAGE": "postgres:16", "PYTHON_IMAGE": "python:3.12-slim"}
LOCAL = frozenset(envgen.LOCAL_IMAGES.values())


def counter() -> itertools.count[int]:
    return itertools.count(1)


def parse(text: str) -> dict[str, str | None]:
    return dotenv_values(stream=io.StringIO(text))


@pytest.mark.parametrize(
    "name",
    ["DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "SMTP_PASSWORD", "SENTRY_TOKEN",
     "AWS_SECRET_ACCESS_KEY", "OIDC_CLIENT_SECRET", "LDAP_BIND_PASSWD", "api_key"],
)  # fmt: skip
def test_secrets_are_known_by_their_name(name: str) -> None:
    assert envgen.is_secret(name)


@pytest.mark.parametrize(
    "name",
    ["POSTGRES_DB", "POSTGRES_USER", "DJANGO_DEBUG", "POSTGRES_PASSWORD_FILE",
     "RECOVERCTL_KEY_FILE", "VAULT_HTTP_PORT", "PYTHON_IMAGE", "KEYCLOAK_URL"],
)  # fmt: skip
def test_other_names_are_not_secrets(name: str) -> None:
    assert not envgen.is_secret(name)


def test_every_placeholder_in_the_shipped_example_is_a_secret_init_fills() -> None:
    """A variable added to .env.example with a change-me value must be a secret by its
    name (init makes it random), or have a real default: init cannot invent one."""
    values = parse(EXAMPLE)
    placeholders = {k for k, v in values.items() if v and envgen.is_placeholder(v)}
    assert placeholders == {"POSTGRES_PASSWORD", "DJANGO_SECRET_KEY"}
    assert all(envgen.is_secret(name) for name in placeholders)
    assert set(envcheck.SECRET_VARIABLES) <= {k for k in values if envgen.is_secret(k)}


def test_the_local_images_are_the_ones_test_env_builds() -> None:
    script = (REPO / "scripts" / "test-env.sh").read_text()
    built = dict(re.findall(r"^(POSTGRES17_IMAGE|PYTHON_IMAGE)=(\S+)$", script, re.M))
    assert built == {
        "POSTGRES17_IMAGE": envgen.LOCAL_IMAGES["POSTGRES_IMAGE"],
        "PYTHON_IMAGE": envgen.LOCAL_IMAGES["PYTHON_IMAGE"],
    }


def test_the_official_images_come_from_the_compose_files() -> None:
    for name in ("docker-compose.yml", "docker-compose.dev.yml"):
        assert envgen.image_defaults((REPO / name).read_text()) == OFFICIAL


# --- images -----------------------------------------------------------------------------


def test_official_images_where_a_registry_answers() -> None:
    choice = envgen.choose_images(OFFICIAL, frozenset(), registry=True)
    assert choice.values == {"POSTGRES_IMAGE": None, "PYTHON_IMAGE": None}
    assert (choice.source, choice.missing) == ("official", ())


def test_official_images_already_here_need_no_registry() -> None:
    choice = envgen.choose_images(OFFICIAL, frozenset(OFFICIAL.values()), registry=None)
    assert choice.source == "official"


def test_local_images_where_no_registry_answers() -> None:
    choice = envgen.choose_images(OFFICIAL, LOCAL, registry=False)
    assert choice.values == envgen.LOCAL_IMAGES
    assert (choice.source, choice.missing) == ("local", ())


def test_local_images_not_built_yet_are_named() -> None:
    choice = envgen.choose_images(OFFICIAL, frozenset(), registry=False)
    assert choice.source == "local"
    assert set(choice.missing) == LOCAL


def test_one_official_image_here_and_no_registry_mixes() -> None:
    choice = envgen.choose_images(OFFICIAL, frozenset({"postgres:16", *LOCAL}), registry=False)
    assert choice.values == {
        "POSTGRES_IMAGE": None,
        "PYTHON_IMAGE": envgen.LOCAL_IMAGES["PYTHON_IMAGE"],
    }


def test_no_engine_leaves_the_images_unset() -> None:
    choice = envgen.choose_images(OFFICIAL, frozenset(), registry=None)
    assert choice.source == "unknown"
    assert set(choice.values.values()) == {None}


# --- hosts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "host"),
    [("vault.example.com", "vault.example.com"), ("Vault.Example.COM.", "vault.example.com"),
     ("localhost", "localhost"), ("192.0.2.10", "192.0.2.10"), ("xn--bcher-kva.de", "xn--bcher-kva.de")],
)  # fmt: skip
def test_hosts(raw: str, host: str) -> None:
    assert envgen.check_host(raw) == host


@pytest.mark.parametrize(
    ("raw", "why"),
    [("https://vault.example.com", "URL"), ("vault.example.com/x", "URL"),
     ("vault.example.com:443", "port"), ("", "not a host"), ("under_score.com", "not a host"),
     ("-bad.com", "not a host"), ("*", "not a host"), ("999.1.1.1", "IPv4")],
)  # fmt: skip
def test_bad_hosts_say_what_to_pass(raw: str, why: str) -> None:
    with pytest.raises(InvalidHost, match=why):
        envgen.check_host(raw)


# --- the file ---------------------------------------------------------------------------


def render(plan: EnvPlan, images: dict[str, str | None] | None = None) -> envgen.Generated:
    seq = counter()
    return envgen.render(
        EXAMPLE,
        plan,
        images or {},
        lambda: f"tok{next(seq)}-" + "Hq3vZ0pLr8" * 6,
        header=["written by init", "", "keep it safe"],
    )


def findings(text: str, stack: envcheck.Stack, port: str) -> dict[str, str]:
    values = parse(text)
    example = parse(EXAMPLE)
    source = envcheck.ENV_FILES[stack]
    results = {
        "line_endings": envcheck.check_line_endings(text, source),
        "syntax": envcheck.check_syntax(text, source),
        "duplicates": envcheck.check_duplicates(text, source),
        "required": envcheck.check_required(values, stack, source),
        "placeholders": envcheck.check_placeholders(values, example, stack, source),
        "secret_key": envcheck.check_secret_key(values, stack, source),
        "debug": envcheck.check_debug(values, stack, source),
        "allowed_hosts": envcheck.check_allowed_hosts(values, "127.0.0.1", port, source),
        "csrf": envcheck.check_csrf_origins(values, "127.0.0.1", port, source),
    }
    if stack == "dev":
        results["cors"] = envcheck.check_cors_origins(values, source)
    return {name: f.status for name, f in results.items()}


def test_dev_file_passes_doctors_env_rules() -> None:
    generated = render(EnvPlan("dev", 8000))
    assert set(findings(generated.text, "dev", "8000").values()) == {OK}
    values = parse(generated.text)
    assert generated.secrets == ("POSTGRES_PASSWORD", "DJANGO_SECRET_KEY")
    assert values["POSTGRES_PASSWORD"] != values["DJANGO_SECRET_KEY"]
    assert values["DJANGO_DEBUG"] == "true"
    assert values["VAULT_HTTP_PORT"] == "8000"
    assert generated.placeholders == ()


def test_prod_file_passes_doctors_env_rules() -> None:
    generated = render(EnvPlan("prod", 8080, ("vault.example.com",)))
    assert set(findings(generated.text, "prod", "8080").values()) == {OK}
    values = parse(generated.text)
    assert values["DJANGO_DEBUG"] == "false"
    assert values["DJANGO_ALLOWED_HOSTS"] == "vault.example.com,localhost,127.0.0.1"
    assert values["DJANGO_CSRF_TRUSTED_ORIGINS"] == (
        "https://vault.example.com,http://localhost:8080,http://127.0.0.1:8080"
    )
    assert values["DJANGO_SECURE_COOKIES"] == "true"
    assert values["DJANGO_CORS_ALLOWED_ORIGINS"] == ""


def test_another_port_is_trusted_too() -> None:
    generated = render(EnvPlan("dev", 18123))
    assert set(findings(generated.text, "dev", "18123").values()) == {OK}


def test_comments_and_order_are_kept_and_the_header_replaced() -> None:
    text = render(EnvPlan("dev", 8000)).text
    assert text.startswith("# written by init\n#\n# keep it safe\n\n# --- PostgreSQL")
    assert "Copy to .env" not in text
    names = [line.split("=")[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert names == [k for k in parse(EXAMPLE)]


def test_local_images_replace_the_commented_lines() -> None:
    text = render(EnvPlan("dev", 8000), dict(envgen.LOCAL_IMAGES)).text
    assert "# POSTGRES_IMAGE" not in text
    assert parse(text)["POSTGRES_IMAGE"] == "recoverctl-test/postgres:17"
    assert parse(text)["PYTHON_IMAGE"] == "recoverctl-test/python:3.11"


def test_official_images_stay_unset() -> None:
    text = render(EnvPlan("dev", 8000), {"POSTGRES_IMAGE": None, "PYTHON_IMAGE": None}).text
    assert "POSTGRES_IMAGE" not in parse(text)
    assert "# POSTGRES_IMAGE=postgres:16" in text


def test_a_secret_added_later_is_random_and_other_placeholders_are_reported() -> None:
    template = EXAMPLE + "SMTP_PASSWORD=change-me-smtp\nSENTRY_DSN=change-me\nSMTP_HOST=mail\n"
    seq = counter()
    generated = envgen.render(template, EnvPlan("dev", 8000), {}, lambda: f"t{next(seq)}" * 20)
    values = parse(generated.text)
    assert "SMTP_PASSWORD" in generated.secrets
    assert not envgen.is_placeholder(values["SMTP_PASSWORD"] or "change-me")
    assert generated.placeholders == ("SENTRY_DSN",)
    assert values["SMTP_HOST"] == "mail"


def test_values_missing_from_the_template_are_appended() -> None:
    generated = envgen.render(
        "POSTGRES_PASSWORD=x\n", EnvPlan("prod", 8080, ("a.example",)), {}, lambda: "r" * 64
    )
    values = parse(generated.text)
    assert values["DJANGO_ALLOWED_HOSTS"] == "a.example,localhost,127.0.0.1"
    assert "# Set by recoverctl init." in generated.text


def test_a_random_secret_is_strong_enough_for_doctor() -> None:
    import secrets

    key = secrets.token_urlsafe(48)
    assert envcheck.check_secret_key({"DJANGO_SECRET_KEY": key}, "prod", ".env").status == OK
