"""The browser pages: who may see them, what they send, and what their HTML allows.

The cryptography itself runs in vault.js and is tested in a real browser by
tests/e2e/test_browser_e2e.py; these tests hold the server side of the pages.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.test import Client, TestCase, override_settings

from vault.models import Secret, UserKey
from vault.tests.helpers import keypair

PASSWORD = "correct horse battery staple"
PAGES = ("/secrets/", "/key-backup/", "/key-check")
# Without collectstatic there is no manifest; the hashed names are the image's business.
PLAIN_STATIC = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


class Page(HTMLParser):
    """The parts of a page the rules below look at."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.labels: dict[str, str] = {}
        self.inline_script = False
        self._label_for: str | None = None
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append((tag, values))
        if tag == "label":
            self._label_for = values.get("for")
            if self._label_for:
                self.labels.setdefault(self._label_for, "")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self._label_for = None
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._label_for:
            self.labels[self._label_for] += data.strip()
        if self._in_script and data.strip():
            self.inline_script = True

    def find(self, tag: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.tags if t == tag]

    def by_id(self, element_id: str) -> dict[str, str] | None:
        return next((attrs for _, attrs in self.tags if attrs.get("id") == element_id), None)


@override_settings(STORAGES=PLAIN_STATIC)
class PagesTestCase(TestCase):
    def setUp(self) -> None:
        User = get_user_model()
        self.alice = User.objects.create_user("alice", password=PASSWORD)
        self.bob = User.objects.create_user("bob", password=PASSWORD)
        self.key = keypair("alice")
        self.client = Client(enforce_csrf_checks=True)

    def login(self) -> None:
        self.client.force_login(self.alice)

    def register(self) -> None:
        UserKey.objects.create(
            user=self.alice,
            public_key=self.key.public_key_b64,
            fingerprint=self.key.fingerprint,
            algorithm={"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-256"},
        )

    def add_secret(self, name: str, owner: object = None, plaintext: bytes = b"pw") -> Secret:
        return Secret.objects.create(owner=owner or self.alice, name=name, envelope=self.key.seal(plaintext))

    def page(self, path: str) -> Page:
        response = self.client.get(path)
        self.assertEqual(response.status_code, 200, path)
        return Page(response.content.decode())

    def csrf_token(self, path: str) -> str:
        page = self.page(path)
        field = next(a for a in page.find("input") if a.get("name") == "csrfmiddlewaretoken")
        return field["value"]


class AccessTests(PagesTestCase):
    def test_signed_out_pages_redirect_to_login(self) -> None:
        for path in PAGES:
            response = self.client.get(path)
            self.assertEqual(response.status_code, 302, path)
            self.assertEqual(response["Location"], f"/login/?next={path}")
        self.assertRedirects(self.client.get("/"), "/login/")

    def test_root_goes_to_secrets_when_signed_in(self) -> None:
        self.login()
        self.assertRedirects(self.client.get("/"), "/secrets/")

    def test_login_page_logs_in_with_csrf(self) -> None:
        token = self.csrf_token("/login/")
        refused = self.client.post("/login/", {"username": "alice", "password": PASSWORD})
        self.assertEqual(refused.status_code, 403)
        wrong = self.client.post(
            "/login/", {"username": "alice", "password": "nope", "csrfmiddlewaretoken": token}
        )
        self.assertEqual(wrong.status_code, 200)
        self.assertContains(wrong, 'role="alert"')
        ok = self.client.post("/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token})
        self.assertRedirects(ok, "/secrets/", fetch_redirect_response=False)
        self.assertEqual(self.client.get("/secrets/").status_code, 200)

    def test_login_keeps_next_on_this_site_only(self) -> None:
        token = self.csrf_token("/login/?next=/key-check")
        body = {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
        self.assertRedirects(
            self.client.post("/login/", {**body, "next": "/key-check"}), "/key-check", fetch_redirect_response=False
        )
        self.client.logout()
        token = self.csrf_token("/login/")
        body["csrfmiddlewaretoken"] = token
        response = self.client.post("/login/", {**body, "next": "https://elsewhere.example/"})
        self.assertRedirects(response, "/secrets/", fetch_redirect_response=False)

    def test_an_admin_session_opens_the_pages(self) -> None:
        get_user_model().objects.create_superuser("root", password=PASSWORD)
        client = Client()
        response = client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"})
        self.assertEqual(response.status_code, 302)
        for path in PAGES:
            self.assertEqual(client.get(path).status_code, 200, path)

    def test_logout_is_a_post_with_csrf(self) -> None:
        self.login()
        self.assertEqual(self.client.get("/logout/").status_code, 405)
        self.assertEqual(self.client.post("/logout/").status_code, 403)
        token = self.csrf_token("/secrets/")
        self.assertRedirects(
            self.client.post("/logout/", {"csrfmiddlewaretoken": token}), "/login/", fetch_redirect_response=False
        )
        self.assertEqual(self.client.get("/secrets/").status_code, 302)

    def test_pages_are_get_only(self) -> None:
        self.login()
        self.client.get("/secrets/")  # sets the CSRF cookie
        for path in PAGES:
            response = self.client.post(path, {}, headers={"X-CSRFToken": self.client.cookies["csrftoken"].value})
            self.assertEqual(response.status_code, 405, path)


class SecurityHeaderTests(PagesTestCase):
    def test_every_page_has_the_strict_policy(self) -> None:
        self.login()
        for path in (*PAGES, "/login/"):
            if path == "/login/":
                self.client.logout()
            response = self.client.get(path)
            self.assertEqual(response.status_code, 200, path)
            csp = response["Content-Security-Policy"]
            self.assertEqual(csp, settings.VAULT_PAGE_CSP)
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            self.assertEqual(directives["default-src"], "'none'")
            self.assertEqual(directives["script-src"], "'self'")
            self.assertEqual(directives["frame-ancestors"], "'none'")
            self.assertNotIn("unsafe", csp)
            self.assertNotIn("http", csp)
            self.assertEqual(response["X-Frame-Options"], "DENY", path)
            self.assertEqual(response["X-Content-Type-Options"], "nosniff", path)
            self.assertIn("no-store", response["Cache-Control"], path)

    def test_no_inline_code_and_no_other_origin(self) -> None:
        self.login()
        self.register()
        self.add_secret("mail")
        for path in PAGES:
            html = self.client.get(path).content.decode()
            page = Page(html)
            self.assertFalse(page.inline_script, path)
            scripts = page.find("script")
            self.assertEqual(len(scripts), 1, path)
            self.assertEqual(scripts[0]["type"], "module")
            self.assertTrue(scripts[0]["src"].startswith("/static/vault/vault"), scripts[0])
            self.assertFalse(page.find("style"), path)
            for _, attrs in page.tags:
                self.assertNotIn("style", attrs, path)
                self.assertFalse([a for a in attrs if a.startswith("on")], (path, attrs))
                for attr in ("src", "href", "action"):
                    self.assertFalse(attrs.get(attr, "").startswith(("http:", "https:", "//")), (path, attrs))

    @override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True)
    def test_secure_cookies_when_configured(self) -> None:
        response = self.client.get("/login/")
        self.assertTrue(response.cookies["csrftoken"]["secure"])
        token = response.cookies["csrftoken"].value
        page = Page(response.content.decode())
        form_token = next(a for a in page.find("input") if a.get("name") == "csrfmiddlewaretoken")["value"]
        self.assertTrue(token and form_token)
        ok = self.client.post("/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": form_token})
        self.assertEqual(ok.status_code, 302)
        self.assertTrue(ok.cookies["sessionid"]["secure"])


class FormRuleTests(PagesTestCase):
    def test_every_input_has_a_label_and_secret_inputs_have_no_name(self) -> None:
        self.login()
        for path in PAGES:
            page = self.page(path)
            for attrs in page.find("input"):
                if attrs.get("type") == "hidden":
                    continue
                self.assertIn(attrs.get("id"), page.labels, (path, attrs))
                self.assertTrue(page.labels[attrs["id"]], (path, attrs))
                # Only the script reads these; a form submitted without it sends nothing secret.
                self.assertNotIn("name", attrs, (path, attrs))
            for form in page.find("form"):
                self.assertEqual(form.get("method"), "post", (path, form))
        login = Client().get("/login/").content.decode()
        page = Page(login)
        for attrs in page.find("input"):
            if attrs.get("type") != "hidden":
                self.assertTrue(page.labels.get(attrs["id"]), attrs)

    def test_import_form_as_the_playbook_names_it(self) -> None:
        self.login()
        self.register()
        self.add_secret("mail")
        page = self.page("/key-backup/")
        labels = {text: element_id for element_id, text in page.labels.items()}
        self.assertEqual(page.by_id(labels["Key file"])["type"], "file")  # type: ignore[index]
        self.assertEqual(page.by_id(labels["Passphrase"])["type"], "password")  # type: ignore[index]
        self.assertContains(self.client.get("/key-backup/"), '<button type="submit">Import</button>', html=True)


class ContentTests(PagesTestCase):
    def test_secrets_page_lists_own_names_only_and_no_ciphertext(self) -> None:
        self.login()
        self.register()
        mine = self.add_secret("<b>mail</b>")
        UserKey.objects.create(
            user=self.bob,
            public_key=keypair("bob").public_key_b64,
            fingerprint=keypair("bob").fingerprint,
            algorithm={"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-256"},
        )
        Secret.objects.create(owner=self.bob, name="bobs-router", envelope=keypair("bob").seal(b"x"))
        response = self.client.get("/secrets/")
        self.assertContains(response, "&lt;b&gt;mail&lt;/b&gt;")
        self.assertNotContains(response, "<b>mail</b>")
        self.assertNotContains(response, "bobs-router")
        self.assertNotContains(response, mine.envelope["ct"])
        self.assertNotContains(response, mine.envelope["ek"])
        self.assertContains(response, f'data-id="{mine.id}"')
        self.assertContains(response, f'data-registered="{self.key.fingerprint}"')

    def test_generate_is_offered_only_while_no_secret_exists(self) -> None:
        self.login()
        first_use = self.client.get("/key-backup/")
        self.assertContains(first_use, 'id="generate-form"')
        self.register()
        no_secret_yet = self.client.get("/key-backup/")
        self.assertContains(no_secret_yet, 'id="generate-form"')
        self.add_secret("mail")
        with_secrets = self.client.get("/key-backup/")
        self.assertNotContains(with_secrets, 'id="generate-form"')
        self.assertNotContains(with_secrets, "Generate key")
        self.assertContains(with_secrets, "Never generate a new key if you want to read existing data")

    def test_key_check_shows_the_registered_fingerprint(self) -> None:
        self.login()
        self.assertContains(self.client.get("/key-check"), '<code id="registered-fp">none</code>', html=True)
        self.register()
        self.assertContains(self.client.get("/key-check"), self.key.fingerprint)


class ScriptTests(TestCase):
    """What can be checked of vault.js without a browser; the browser e2e test does the rest."""

    def setUp(self) -> None:
        found = finders.find("vault/vault.js")
        self.assertIsNotNone(found)
        self.source = Path(str(found)).read_text()

    def test_format_parameters(self) -> None:
        self.assertRegex(self.source, r"const ITERATIONS = 600000;")
        self.assertRegex(self.source, r"const MODULUS_BITS = 3072;")
        self.assertIn('hash: "SHA-256"', self.source)
        self.assertIn('"RSA-OAEP-256+A256GCM"', self.source)

    def test_no_other_origin_no_eval_no_html_injection(self) -> None:
        self.assertIsNone(re.search(r"https?://", self.source))
        for banned in ("eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            self.assertNotIn(banned, self.source)

    def test_private_keys_are_stored_non_extractable(self) -> None:
        # Every unwrap that is stored passes extractable=false; the one true is the re-wrap for an export.
        self.assertIn("async function unwrapPrivateKey(keyFile, passphrase, extractable = false)", self.source)
        calls = re.findall(r"await unwrapPrivateKey\(([^)]*)\)", self.source)
        self.assertEqual(len(calls), 3, calls)
        self.assertEqual([c for c in calls if "true" in c], ["keyFile, current, true"])
        self.assertEqual(self.source.count("subtle.unwrapKey("), 1)
