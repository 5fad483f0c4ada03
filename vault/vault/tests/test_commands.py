from __future__ import annotations

import io
import json
import os
from unittest import mock

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

from vault.models import Secret, UserKey
from vault.tests.helpers import keypair

PASSWORD = "correct horse battery staple"


def run(*args: str, stdin: str | None = None) -> str:
    out = io.StringIO()
    kwargs = {"stdout": out}
    if stdin is not None:
        kwargs["stdin"] = io.StringIO(stdin)
    call_command(*args, **kwargs)
    return out.getvalue()


class VaultReportTests(TestCase):
    def test_empty(self) -> None:
        self.assertEqual(json.loads(run("vault_report")), {"users": [], "secrets_total": 0})

    def test_users_keys_and_counts(self) -> None:
        User = get_user_model()
        alice = User.objects.create_user("alice", password=PASSWORD)
        User.objects.create_user("bob", password=PASSWORD)
        key = keypair("alice")
        UserKey.objects.create(user=alice, public_key=key.public_key_b64, fingerprint=key.fingerprint,
                               algorithm={"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-256"})
        for name in ("mail", "bank"):
            Secret.objects.create(owner=alice, name=name, envelope=key.seal(name.encode()))

        output = run("vault_report")
        self.assertEqual(len(output.strip().splitlines()), 1, "one JSON object, nothing else")
        self.assertEqual(json.loads(output), {
            "users": [
                {"username": "alice", "fingerprint": key.fingerprint, "secrets": 2},
                {"username": "bob", "fingerprint": None, "secrets": 0},
            ],
            "secrets_total": 2,
        })
        self.assertNotIn(key.seal(b"x")["alg"], output, "no envelope content in the report")


class VaultCreateUserTests(TestCase):
    def test_password_from_stdin(self) -> None:
        output = run("vault_create_user", "carol", "--password-stdin", stdin=PASSWORD + "\n")
        self.assertEqual(json.loads(output), {"created": "carol"})
        user = get_user_model().objects.get(username="carol")
        self.assertTrue(user.check_password(PASSWORD))
        self.assertFalse(user.is_superuser)
        self.assertNotIn(PASSWORD, output)

    def test_superuser(self) -> None:
        run("vault_create_user", "root", "--superuser", "--password-stdin", stdin=PASSWORD + "\r\n")
        user = get_user_model().objects.get(username="root")
        self.assertTrue(user.is_superuser and user.is_staff)
        self.assertTrue(user.check_password(PASSWORD))

    def test_password_from_env(self) -> None:
        with mock.patch.dict(os.environ, {"VAULT_USER_PASSWORD": PASSWORD}):
            self.assertEqual(json.loads(run("vault_create_user", "dave")), {"created": "dave"})
        self.assertTrue(get_user_model().objects.get(username="dave").check_password(PASSWORD))

    def test_password_is_not_accepted_from_argv(self) -> None:
        with self.assertRaises(CommandError):
            run("vault_create_user", "eve", PASSWORD)
        with self.assertRaises(CommandError):
            run("vault_create_user", "eve", "--password", PASSWORD)
        self.assertFalse(get_user_model().objects.filter(username="eve").exists())

    def test_no_password_fails(self) -> None:
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop("VAULT_USER_PASSWORD", None)
            with self.assertRaisesMessage(CommandError, "no password"):
                run("vault_create_user", "frank")
        with self.assertRaisesMessage(CommandError, "stdin had no password"):
            run("vault_create_user", "frank", "--password-stdin", stdin="")

    def test_existing_user_fails(self) -> None:
        get_user_model().objects.create_user("alice", password=PASSWORD)
        with self.assertRaisesMessage(CommandError, "already exists"):
            run("vault_create_user", "alice", "--password-stdin", stdin=PASSWORD + "\n")

    def test_weak_password_rejected(self) -> None:
        with self.assertRaisesMessage(CommandError, "password rejected"):
            run("vault_create_user", "gina", "--password-stdin", stdin="123\n")
        self.assertFalse(get_user_model().objects.filter(username="gina").exists())


class VaultEnvelopesTests(TestCase):
    def test_sample_of_one_fingerprint_only(self) -> None:
        User = get_user_model()
        alice = User.objects.create_user("alice", password=PASSWORD)
        bob = User.objects.create_user("bob", password=PASSWORD)
        a, b = keypair("alice"), keypair("bob")
        for i in range(5):
            Secret.objects.create(owner=alice, name=f"a{i}", envelope=a.seal(b"x"))
        Secret.objects.create(owner=bob, name="b", envelope=b.seal(b"y"))
        report = json.loads(run("vault_envelopes", a.fingerprint, "--limit", "2"))
        self.assertEqual(report["total"], 5)
        self.assertEqual(len(report["sample"]), 2)
        self.assertTrue(all(s["envelope"]["kid"] == a.fingerprint for s in report["sample"]))

    def test_unknown_fingerprint(self) -> None:
        report = json.loads(run("vault_envelopes", "sha256:" + "0" * 64))
        self.assertEqual((report["total"], report["sample"]), (0, []))


class VaultWaitDbTests(TestCase):
    def test_waits_then_migrates_in_the_same_process(self) -> None:
        out = io.StringIO()
        call_command("vault_wait_db", "--timeout", "1", "--migrate", stdout=out)
        self.assertIn("No migrations to apply", out.getvalue())

    def test_without_migrate_it_only_waits(self) -> None:
        out = io.StringIO()
        call_command("vault_wait_db", "--timeout", "1", stdout=out)
        self.assertEqual(out.getvalue(), "")
