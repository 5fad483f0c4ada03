"""doctor reads .env as the vault does: the two parsers agree, value by value.

The vault image cannot import recoverctl and doctor must run without Django, so each
package keeps its own few lines of parsing; this test holds them to one behaviour."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType

import pytest

from recoverctl.core import envcheck

REPO = Path(__file__).resolve().parents[2]


def _vault_env() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vault_config_env", REPO / "vault/config/env.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


VAULT = _vault_env()
WORDS = ["", " ", "1", "0", "true", "True", " yes ", "on", "off", "no", "false", "FALSE", "maybe", "2"]


@pytest.mark.parametrize("raw", [None, *WORDS])
def test_debug_flag_reads_as_the_vault_does(raw: str | None) -> None:
    environ = {} if raw is None else {"DJANGO_DEBUG": raw}
    try:
        vault: bool | None = VAULT.env_bool("DJANGO_DEBUG", default=False, environ=environ)
    except Exception:  # ImproperlyConfigured: the vault refuses to start
        vault = None
    assert envcheck._debug_flag(environ) is vault


@pytest.mark.parametrize(
    "raw", ["", "a", " a , b ", "a,,b", ",", "x.example, y.example ,", *map("".join, itertools.product("a, ", repeat=3))]
)
def test_lists_split_as_the_vault_splits_them(raw: str) -> None:
    name = "DJANGO_ALLOWED_HOSTS"
    assert envcheck._list({name: raw}, name) == VAULT.env_list(name, environ={name: raw})


def test_secret_key_rules_are_the_vaults() -> None:
    assert envcheck.MIN_SECRET_KEY_LENGTH == VAULT.MIN_SECRET_KEY_LENGTH
    assert set(envcheck.PLACEHOLDER_MARKERS) == set(VAULT._PLACEHOLDERS)
    for key in ("django-insecure-" + "x" * 60, "change-me" + "x" * 60, "short"):
        with pytest.raises(Exception):  # noqa: B017 - the vault's ImproperlyConfigured
            VAULT.check_secret_key(key)
