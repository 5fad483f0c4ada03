from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

from config.env import check_secret_key, env_bool, env_list

GOOD_KEY = "k7#Vq2@pLm9$wX4!zR8^tY1&uN6*oB3(eC5)hJ0_gF2+dS9-aQ"
PROJECT_DIR = Path(__file__).resolve().parents[2]


class SecretKeyCheckTests(SimpleTestCase):
    def assertRefused(self, value: str | None, fragment: str) -> None:
        with self.assertRaises(ImproperlyConfigured) as ctx:
            check_secret_key(value)
        message = str(ctx.exception)
        self.assertIn(fragment, message)
        self.assertNotIn("\n", message)
        if value:
            self.assertNotIn(value, message, "the key itself must not be echoed into logs")

    def test_good_key_passes(self) -> None:
        self.assertEqual(check_secret_key(GOOD_KEY), GOOD_KEY)

    def test_missing(self) -> None:
        self.assertRefused(None, "not set")
        self.assertRefused("", "not set")

    def test_short(self) -> None:
        self.assertRefused(GOOD_KEY[:49], "too short (49 chars)")

    def test_django_insecure_prefix(self) -> None:
        self.assertRefused("django-insecure-" + GOOD_KEY, "django-insecure-")

    def test_placeholders_any_case(self) -> None:
        for marker in ("change-me", "CHANGEME", "Replace-Me", "changeme"):
            self.assertRefused(f"{GOOD_KEY}-{marker}", "placeholder")

    def test_settings_module_refuses_in_prod(self) -> None:
        # End to end: importing the settings with DEBUG off and a placeholder key fails.
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        env.update(DJANGO_SECRET_KEY="change-me", DJANGO_DEBUG="false", DJANGO_SETTINGS_MODULE="config.settings")
        proc = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("ImproperlyConfigured: DJANGO_SECRET_KEY is a placeholder", proc.stderr)

    def test_debug_needs_no_key(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
        env.update(DJANGO_DEBUG="1", DJANGO_SETTINGS_MODULE="config.settings")
        proc = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"],
            cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)


class EnvParsingTests(SimpleTestCase):
    def test_bool(self) -> None:
        for raw, expected in (("true", True), ("1", True), ("TRUE", True), ("false", False), ("0", False), ("", False)):
            self.assertIs(env_bool("X", environ={"X": raw}), expected)
        self.assertIs(env_bool("X", default=True, environ={}), True)
        with self.assertRaises(ImproperlyConfigured):
            env_bool("X", environ={"X": "maybe"})

    def test_list(self) -> None:
        self.assertEqual(env_list("X", environ={"X": " a.example, b.example ,,"}), ["a.example", "b.example"])
        self.assertEqual(env_list("X", environ={}), [])
