from __future__ import annotations

import json
from typing import Any
from unittest import mock

from django.contrib.auth import get_user_model
from django.test import Client, TestCase, override_settings

from vault.models import Secret, UserKey
from vault.services import NEW_KEY_REFUSED
from vault.tests.helpers import KeyPair, keypair

PASSWORD = "correct horse battery staple"


class ApiClient:
    """A browser-like client: CSRF enforced, token taken from the cookie like the front end does."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)
        response = self.client.get("/api/csrf")
        assert response.status_code == 200

    @property
    def token(self) -> str:
        return self.client.cookies["csrftoken"].value

    def post(self, path: str, body: Any, csrf: bool = True) -> Any:
        headers = {"X-CSRFToken": self.token} if csrf else {}
        return self.client.post(path, data=json.dumps(body), content_type="application/json", headers=headers)

    def get(self, path: str) -> Any:
        return self.client.get(path)

    def login(self, username: str, password: str = PASSWORD) -> Any:
        return self.post("/api/login", {"username": username, "password": password})


class VaultApiTestCase(TestCase):
    def setUp(self) -> None:
        User = get_user_model()
        self.alice = User.objects.create_user("alice", password=PASSWORD)
        self.bob = User.objects.create_user("bob", password=PASSWORD)
        self.key = keypair("alice")
        self.new_key = keypair("alice-new")
        self.api = ApiClient()
        self.assertEqual(self.api.login("alice").status_code, 200)

    def register(self, key: KeyPair, **extra: Any) -> Any:
        return self.api.post("/api/key", key.registration(**extra))

    def add_secret(self, name: str, plaintext: bytes, key: KeyPair | None = None) -> Any:
        return self.api.post("/api/secrets", {"name": name, "envelope": (key or self.key).seal(plaintext)})


class AuthAndCsrfTests(TestCase):
    def setUp(self) -> None:
        get_user_model().objects.create_user("alice", password=PASSWORD)

    def test_csrf_endpoint_sets_cookie(self) -> None:
        response = Client().get("/api/csrf")
        self.assertEqual(response.status_code, 200)
        self.assertIn("csrftoken", response.cookies)
        self.assertTrue(response.json()["csrfToken"])

    def test_anonymous_gets_401_json_not_redirect(self) -> None:
        api = ApiClient()
        for path in ("/api/key-check", "/api/secrets", "/api/secrets/1"):
            response = api.get(path)
            self.assertEqual(response.status_code, 401, path)
            self.assertEqual(response.json(), {"error": "authentication required"})
        for path, body in (("/api/key", {}), ("/api/secrets", {})):
            self.assertEqual(api.post(path, body).status_code, 401, path)

    def test_login_ok_and_bad_password(self) -> None:
        api = ApiClient()
        bad = api.login("alice", "wrong password")
        self.assertEqual(bad.status_code, 401)
        self.assertIn("error", bad.json())
        ok = api.login("alice")
        self.assertEqual(ok.status_code, 200)
        self.assertEqual(ok.json(), {"username": "alice"})
        self.assertEqual(api.get("/api/secrets").status_code, 200)

    def test_logout(self) -> None:
        api = ApiClient()
        api.login("alice")
        self.assertEqual(api.post("/api/logout", {}).status_code, 200)
        self.assertEqual(api.get("/api/secrets").status_code, 401)

    def test_csrf_enforced_on_post(self) -> None:
        api = ApiClient()
        response = api.post("/api/login", {"username": "alice", "password": PASSWORD}, csrf=False)
        self.assertEqual(response.status_code, 403)
        self.assertIn("CSRF verification failed", response.json()["error"])
        self.assertEqual(api.login("alice").status_code, 200)
        # Logged in, a POST without the token is still refused.
        response = api.post("/api/key", keypair("alice").registration(), csrf=False)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(UserKey.objects.exists())

    def test_wrong_method_and_bad_json(self) -> None:
        api = ApiClient()
        api.login("alice")
        self.assertEqual(api.get("/api/key").status_code, 405)
        response = api.client.post(
            "/api/secrets", data="{nope", content_type="application/json", headers={"X-CSRFToken": api.token}
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json(), {"error": "request body must be JSON"})

    def test_unknown_api_path_is_json_404(self) -> None:
        response = Client().get("/api/nothing-here")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.json(), {"error": "not found"})


class KeyTests(VaultApiTestCase):
    def test_register_then_key_check(self) -> None:
        self.assertEqual(self.api.get("/api/key-check").status_code, 404)
        self.assertEqual(self.api.get("/api/key-check").json(), {"error": "no key registered"})
        response = self.register(self.key)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(response.json(), {"status": "registered", "fingerprint": self.key.fingerprint})
        self.assertEqual(self.api.get("/api/key-check").json(), {"fingerprint": self.key.fingerprint})
        stored = UserKey.objects.get(user=self.alice)
        self.assertEqual(stored.algorithm, {"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-256"})

    def test_same_key_again_is_unchanged(self) -> None:
        self.register(self.key)
        response = self.register(self.key)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["status"], "unchanged")

    def test_fingerprint_mismatch_rejected(self) -> None:
        body = self.key.registration(fingerprint=self.new_key.fingerprint)
        response = self.api.post("/api/key", body)
        self.assertEqual(response.status_code, 400)
        self.assertIn("fingerprint does not match", response.json()["error"])
        self.assertFalse(UserKey.objects.exists())

    def test_different_key_without_secrets_replaces(self) -> None:
        self.register(self.key)
        response = self.register(self.new_key)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["status"], "replaced")
        self.assertEqual(UserKey.objects.get(user=self.alice).fingerprint, self.new_key.fingerprint)

    def test_new_key_refused_while_secrets_exist(self) -> None:
        self.register(self.key)
        self.add_secret("mail", b"pw1")
        response = self.register(self.new_key)
        self.assertEqual(response.status_code, 409)
        self.assertEqual(response.json()["error"], NEW_KEY_REFUSED)
        self.assertIn("never generate a new key if you want to read existing data", NEW_KEY_REFUSED)
        self.assertEqual(UserKey.objects.get(user=self.alice).fingerprint, self.key.fingerprint)

    def test_rotation_reencrypts_every_secret_atomically(self) -> None:
        self.register(self.key)
        ids = [self.add_secret(name, name.encode()).json()["id"] for name in ("mail", "bank", "wifi")]
        listed = self.api.get("/api/secrets").json()["secrets"]
        items = [{"id": s["id"], "envelope": self.new_key.seal(self.key.open(s["envelope"]))} for s in listed]

        response = self.register(self.new_key, rotate=True, secrets=items)
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json(), {"status": "rotated", "fingerprint": self.new_key.fingerprint, "secretsRotated": 3})
        self.assertEqual(self.api.get("/api/key-check").json(), {"fingerprint": self.new_key.fingerprint})
        for secret_id, name in zip(ids, ("mail", "bank", "wifi"), strict=True):
            envelope = self.api.get(f"/api/secrets/{secret_id}").json()["envelope"]
            self.assertEqual(envelope["kid"], self.new_key.fingerprint)
            self.assertEqual(self.new_key.open(envelope), name.encode())

    def assertNothingRotated(self) -> None:
        self.assertEqual(UserKey.objects.get(user=self.alice).fingerprint, self.key.fingerprint)
        for secret in Secret.objects.filter(owner=self.alice):
            self.assertEqual(secret.envelope["kid"], self.key.fingerprint)

    def test_rotation_missing_a_secret_changes_nothing(self) -> None:
        self.register(self.key)
        first = self.add_secret("mail", b"a").json()["id"]
        self.add_secret("bank", b"b")
        response = self.register(self.new_key, rotate=True, secrets=[{"id": first, "envelope": self.new_key.seal(b"a")}])
        self.assertEqual(response.status_code, 400)
        self.assertIn("missing ids", response.json()["error"])
        self.assertNothingRotated()

    def test_rotation_with_one_bad_envelope_changes_nothing(self) -> None:
        self.register(self.key)
        a = self.add_secret("mail", b"a").json()["id"]
        b = self.add_secret("bank", b"b").json()["id"]
        items = [
            {"id": a, "envelope": self.new_key.seal(b"a")},
            {"id": b, "envelope": self.key.seal(b"b")},  # still under the old key
        ]
        response = self.register(self.new_key, rotate=True, secrets=items)
        self.assertEqual(response.status_code, 400)
        self.assertIn("secrets[1]", response.json()["error"])
        self.assertNothingRotated()

    def test_rotation_cannot_touch_other_users_secrets(self) -> None:
        self.register(self.key)
        mine = self.add_secret("mail", b"a").json()["id"]
        bob_key = keypair("bob")
        UserKey.objects.create(user=self.bob, public_key=bob_key.public_key_b64, fingerprint=bob_key.fingerprint,
                               algorithm={"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-256"})
        theirs = Secret.objects.create(owner=self.bob, name="bob", envelope=bob_key.seal(b"bob")).id
        items = [{"id": i, "envelope": self.new_key.seal(b"x")} for i in (mine, theirs)]
        response = self.register(self.new_key, rotate=True, secrets=items)
        self.assertEqual(response.status_code, 400)
        self.assertIn("unknown secret ids", response.json()["error"])
        self.assertEqual(Secret.objects.get(pk=theirs).envelope["kid"], bob_key.fingerprint)
        self.assertNothingRotated()


class SecretTests(VaultApiTestCase):
    def test_create_list_get(self) -> None:
        self.register(self.key)
        response = self.add_secret("mail", b"s3cret")
        self.assertEqual(response.status_code, 201, response.content)
        created = response.json()
        self.assertEqual(set(created), {"id", "name", "envelope", "created", "updated"})
        listed = self.api.get("/api/secrets").json()["secrets"]
        self.assertEqual([s["id"] for s in listed], [created["id"]])
        fetched = self.api.get(f"/api/secrets/{created['id']}").json()
        self.assertEqual(self.key.open(fetched["envelope"]), b"s3cret")

    def test_kid_mismatch_rejected(self) -> None:
        self.register(self.key)
        response = self.add_secret("mail", b"x", key=self.new_key)
        self.assertEqual(response.status_code, 400)
        self.assertIn("envelope.kid", response.json()["error"])
        self.assertFalse(Secret.objects.exists())

    def test_ek_size_must_match_registered_key(self) -> None:
        self.register(self.key)
        big = keypair("big", 3072)
        envelope = big.seal(b"x", kid=self.key.fingerprint)
        response = self.api.post("/api/secrets", {"name": "mail", "envelope": envelope})
        self.assertEqual(response.status_code, 400)
        self.assertIn("256 bytes", response.json()["error"])

    def test_bad_envelope_shape_rejected(self) -> None:
        self.register(self.key)
        envelope = self.key.seal(b"x")
        envelope["plaintext"] = "x"
        response = self.api.post("/api/secrets", {"name": "mail", "envelope": envelope})
        self.assertEqual(response.status_code, 400)
        self.assertIn("unknown fields", response.json()["error"])

    def test_secret_needs_a_registered_key(self) -> None:
        response = self.add_secret("mail", b"x")
        self.assertEqual(response.status_code, 409)

    def test_name_required(self) -> None:
        self.register(self.key)
        response = self.api.post("/api/secrets", {"name": " ", "envelope": self.key.seal(b"x")})
        self.assertEqual(response.status_code, 400)

    def test_owner_isolation(self) -> None:
        self.register(self.key)
        secret_id = self.add_secret("mail", b"x").json()["id"]
        bob = ApiClient()
        bob.login("bob")
        self.assertEqual(bob.get("/api/secrets").json(), {"secrets": []})
        response = bob.get(f"/api/secrets/{secret_id}")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.json(), {"error": "not found"})
        self.assertEqual(bob.get("/api/key-check").status_code, 404)


class HealthzTests(TestCase):
    def test_ok(self) -> None:
        response = Client().get("/healthz")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok", "database": "ok", "migrations": "ok"})

    def test_any_host_header(self) -> None:
        # The container healthcheck calls 127.0.0.1 whatever DJANGO_ALLOWED_HOSTS says.
        with override_settings(ALLOWED_HOSTS=["vault.example.org"]):
            self.assertEqual(Client().get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code, 200)
            self.assertEqual(Client().get("/api/csrf", HTTP_HOST="127.0.0.1:8000").status_code, 400)

    def test_pending_migrations_is_503(self) -> None:
        with mock.patch("vault.health.MigrationExecutor") as executor:
            executor.return_value.migration_plan.return_value = [("migration", False)]
            response = Client().get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json()["migrations"], "pending")
        self.assertEqual(response.json()["database"], "ok")

    def test_database_down_is_503(self) -> None:
        with mock.patch("vault.health.connection") as connection:
            connection.cursor.side_effect = RuntimeError("connection refused")
            response = Client().get("/healthz")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json(), {"status": "error", "database": "error", "migrations": "unknown"})


class AdminTests(TestCase):
    @override_settings(STORAGES={
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    })
    def test_admin_login_page_and_models_registered(self) -> None:
        self.assertEqual(Client().get("/admin/login/").status_code, 200)
        admin = get_user_model().objects.create_superuser("root", password=PASSWORD)
        client = Client()
        client.force_login(admin)
        self.assertEqual(client.get("/admin/vault/userkey/").status_code, 200)
        self.assertEqual(client.get("/admin/vault/secret/").status_code, 200)
