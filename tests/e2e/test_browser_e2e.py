"""The vault's browser pages, driven in a real browser (Debian's chromium through
Playwright) against the real vault container of a real compose stack.

The main test walks playbook.md's section 1 as a person would: generate a key, add
secrets, export the key; back up, erase the volume, recover; then, in a fresh browser
profile, import the key, check it and reveal every secret. Every request the browser
sends is recorded (observed, not altered) and searched for passphrases, plaintexts and
the private key.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recoverctl.core.keyfile import fingerprint_of, open_envelope, parse_keyfile, unwrap_private_key
from tests.e2e.conftest import REPO, Project, make_project, tear_down
from tests.e2e.vaultclient import VaultClient
from tests.keywriter import make_keyfile

try:
    from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
except ImportError:  # pragma: no cover - reported by the fixture, never skipped
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
VECTOR = REPO / "tests" / "vectors" / "zkkey-v1.json"

CAROL_PW = "carol-Account-pass-4"
DAVE_PW = "dave-Account-pass-5"
VEC_PW = "vector-Account-pass-6"
FIRST_PASSPHRASE = "first passphrase, typed at generation"
# Non-ASCII on purpose: PBKDF2 must see the same UTF-8 bytes in the browser and in Python.
PASSPHRASE = "Zweite Passphrase — ünïcode ✓ 42"
WRONG_PASSPHRASE = "not the passphrase at all"
DAVE_PASSPHRASE = "dave keeps his own passphrase"
SECRETS = {"mail": "hunter2-in-the-browser", "bank": 's3cr3t Ω ✓ "quoted" & <tagged>'}


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Watch:
    """Everything the browser sent, and everything it complained about."""

    requests: list[Recorded] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.on("request", self._request)
        context.on("page", self._page)

    def _request(self, request: Any) -> None:
        self.requests.append(
            Recorded(request.method, request.url, dict(request.headers), request.post_data_buffer or b"")
        )

    def _page(self, page: Page) -> None:
        page.on("pageerror", lambda error: self.problems.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda msg: self.problems.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None,
        )


@dataclass
class Browsing:
    playwright: Playwright
    browser: Browser
    watch: Watch

    def fresh_profile(self) -> BrowserContext:
        """A new, empty profile: no cookies, no IndexedDB, as on another machine."""
        context = self.browser.new_context(accept_downloads=True)
        context.set_default_timeout(30_000)
        self.watch.attach(context)
        return context


@pytest.fixture(scope="module")
def browsing() -> Iterator[Browsing]:
    if sync_playwright is None:
        pytest.fail("Playwright is not installed: `make venv` installs the dev extras.", pytrace=False)
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test-env` (scripts/test-env.sh) installs Debian's chromium.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        # --no-sandbox: the tests run as root, where chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield Browsing(playwright, browser, Watch())
        browser.close()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("browser"), "rctl-e2e-browser", docker_client)
    project.force_clean()
    project.write_env(".env")
    up = project.run("up")
    assert up.returncode == 0, up.stderr
    yield project
    tear_down(project)


# --- a person at the browser --------------------------------------------------------


class Person:
    def __init__(self, context: BrowserContext, base: str):
        self.page = context.new_page()
        self.base = base

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        # The module marks the page once it is wired up (a string predicate would need eval).
        self.page.wait_for_selector("body[data-ready=true]")
        return response

    def log_in(self, username: str, password: str) -> None:
        self.page.goto(self.base + "/")
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/secrets/")
        self.page.wait_for_selector("body[data-ready=true]")

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def generate(self, passphrase: str, into: Path) -> str:
        self.open("/key-backup/")
        form = self.page.locator("#generate-form")
        form.get_by_label("New passphrase", exact=True).fill(passphrase)
        form.get_by_label("New passphrase again").fill(passphrase)
        with self.page.expect_download() as download:
            form.get_by_role("button", name="Generate key").click()
        download.value.save_as(into)
        self.page.wait_for_selector("#key-status.ok")
        assert download.value.suggested_filename.endswith(".zkkey.json")
        return self.text("#key-status")

    def export(self, current: str, new: str, into: Path) -> str:
        self.open("/key-backup/")
        form = self.page.locator("#export-form")
        form.get_by_label("Current passphrase").fill(current)
        form.get_by_label("New passphrase", exact=True).fill(new)
        form.get_by_label("New passphrase again").fill(new)
        with self.page.expect_download() as download:
            form.get_by_role("button", name="Export").click()
        download.value.save_as(into)
        self.page.wait_for_selector("#exp-msg.ok")
        return self.text("#exp-msg")

    def import_key(self, file: Path, passphrase: str) -> str:
        self.open("/key-backup/")
        self.page.get_by_label("Key file").set_input_files(str(file))
        self.page.get_by_label("Passphrase", exact=True).fill(passphrase)
        self.page.get_by_role("button", name="Import").click()
        self.page.wait_for_selector("#imp-msg.ok, #imp-msg.error")
        return self.text("#imp-msg")

    def add_secret(self, name: str, value: str) -> None:
        self.page.get_by_label("Name").fill(name)
        self.page.get_by_label("Value").fill(value)
        self.page.get_by_role("button", name="Add").click()
        self.page.wait_for_selector("#add-msg.ok, #add-msg.error")
        assert "Added" in self.text("#add-msg"), self.text("#add-msg")

    def reveal(self, name: str, *, keyboard: bool = False) -> str:
        item = self.page.locator("#secret-list li").filter(
            has=self.page.locator(".name", has_text=re.compile(f"^{re.escape(name)}$"))
        )
        button = item.get_by_role("button", name="Reveal")
        if keyboard:
            button.focus()
            self.page.keyboard.press("Enter")
        else:
            button.click()
        item.get_by_role("button", name="Hide").wait_for()
        return item.locator("output").inner_text()

    def hide(self, name: str) -> tuple[bool, str]:
        item = self.page.locator("#secret-list li").filter(has_text=name)
        item.get_by_role("button", name="Hide").click()
        output = item.locator("output")
        return output.is_hidden(), output.text_content() or ""

    def key_check(self) -> str:
        self.open("/key-check")
        self.page.wait_for_selector("#check-result.ok, #check-result.error")
        return self.text("#check-result")

    def stored_key(self, username: str) -> dict[str, Any] | None:
        """What this profile's IndexedDB holds for the user (through the devtools, not the page)."""
        result: dict[str, Any] | None = self.page.evaluate(
            """async (user) => {
                const db = await new Promise((ok, ko) => {
                    const r = indexedDB.open('vault-keys', 1);
                    r.onsuccess = () => ok(r.result); r.onerror = () => ko(r.error);
                });
                const rec = await new Promise((ok, ko) => {
                    const r = db.transaction('keys').objectStore('keys').get(user);
                    r.onsuccess = () => ok(r.result); r.onerror = () => ko(r.error);
                });
                db.close();
                if (!rec) return null;
                return {fingerprint: rec.fingerprint, extractable: rec.privateKey.extractable,
                        type: rec.privateKey.type, bits: rec.privateKey.algorithm.modulusLength,
                        usages: rec.privateKey.usages};
            }""",
            username,
        )
        return result


# --- helpers ---------------------------------------------------------------------------


def base_url(project: Project) -> str:
    """The backend's published address, read from the engine (it moves when the stack is recreated)."""
    backend = project.container("backend")
    backend.reload()
    published = backend.attrs["NetworkSettings"]["Ports"]["8000/tcp"]
    assert published and all(p["HostIp"] == "127.0.0.1" for p in published), published
    return f"http://127.0.0.1:{published[0]['HostPort']}"


def forms_of(text: str) -> set[bytes]:
    """The ways a string could travel in a request: raw, form-encoded, JSON-escaped."""
    return {
        text.encode(),
        urllib.parse.quote_plus(text).encode(),
        urllib.parse.quote(text).encode(),
        json.dumps(text)[1:-1].encode(),
        json.dumps(text, ensure_ascii=False)[1:-1].encode(),
    }


def private_key_forms(key: rsa.RSAPrivateKey) -> set[bytes]:
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    b64 = base64.b64encode(der).decode()
    d = key.private_numbers().d
    jwk_d = base64.urlsafe_b64encode(d.to_bytes((d.bit_length() + 7) // 8, "big")).decode()
    # Any 64-character stretch of the base64 (PEM lines included), the raw DER, or the
    # private exponent as a JWK would write it would give the key away.
    return {der[64:128], jwk_d[:64].encode(), *(b64[i : i + 64].encode() for i in range(0, len(b64) - 64, 64))}


def leaks(requests: list[Recorded], needles: dict[str, set[bytes]]) -> list[str]:
    found = []
    for r in requests:
        blob = b"\n".join([r.url.encode(), r.body, *(f"{k}: {v}".encode() for k, v in r.headers.items())])
        for what, forms in needles.items():
            if any(form and form in blob for form in forms):
                found.append(f"{what} in {r.method} {r.url}")
    return found


def damaged_copy(source: Path, into: Path) -> Path:
    data = json.loads(source.read_text())
    wrapped = data["wrappedKey"]
    middle = len(wrapped) // 2
    data["wrappedKey"] = wrapped[:middle] + ("A" if wrapped[middle] != "A" else "B") + wrapped[middle + 1 :]
    into.write_text(json.dumps(data))
    return into


def register_vector_user(project: Project) -> dict[str, Any]:
    """A user whose registered key is the committed test vector's, with its envelopes stored."""
    vector: dict[str, Any] = json.loads(VECTOR.read_text())
    project.create_user("vector", VEC_PW)
    client = VaultClient(base_url(project))
    client.login("vector", VEC_PW)
    kf = vector["keyFile"]
    r = client.call(
        "POST",
        "/api/key",
        {"publicKey": kf["publicKey"], "fingerprint": kf["fingerprint"], "algorithm": kf["algorithm"]},
    )
    assert r.status == 201, r
    for i, item in enumerate(vector["envelopes"]):
        r = client.call("POST", "/api/secrets", {"name": f"vector-{i}", "envelope": item["envelope"]})
        assert r.status == 201, r
    return vector


# --- the tests -------------------------------------------------------------------------


def test_playbook_section_1_in_a_real_browser(
    stack: Project, browsing: Browsing, tmp_path: Path
) -> None:
    started = time.monotonic()
    project = stack
    project.create_user("carol", CAROL_PW)
    project.create_user("dave", DAVE_PW)
    watch = browsing.watch

    # 1. Log in, generate a key, add two secrets, export the key with a passphrase.
    first = Person(browsing.fresh_profile(), base_url(project))
    first.log_in("carol", CAROL_PW)
    assert "No key is registered" in first.text("#key-status")
    generated = tmp_path / "generated.zkkey.json"
    status = first.generate(FIRST_PASSPHRASE, generated)
    assert "Key generated and registered" in status
    stored = first.stored_key("carol")
    assert stored is not None
    assert stored["extractable"] is False and stored["type"] == "private", stored
    assert stored["bits"] == 3072 and stored["usages"] == ["decrypt"], stored
    assert first.page.get_by_role("button", name="Generate key").is_hidden()

    first.open("/secrets/")
    for name, value in SECRETS.items():
        first.add_secret(name, value)
    assert first.reveal("mail") == SECRETS["mail"]
    # Kept where the playbook says: outside the project, 0600, and named in recoverctl's settings.
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    exported = safe / "carol.zkkey.json"
    assert "Exported" in first.export(FIRST_PASSPHRASE, PASSPHRASE, exported)
    exported.chmod(0o600)
    (project.root / "recoverctl-config.toml").write_text(f'[recoverctl]\nkey_file = "{exported}"\n')
    first.open("/key-backup/")
    # Secrets exist now: the page never offers a new key again.
    assert first.page.get_by_role("button", name="Generate key").count() == 0
    first.page.context.close()

    # The browser's files are what recoverctl's Python reader accepts.
    carol_key = unwrap_private_key(parse_keyfile(exported.read_text()), PASSPHRASE)
    kf = parse_keyfile(exported.read_text())
    assert (kf.modulus_length, kf.iterations) == (3072, 600_000)
    assert parse_keyfile(generated.read_text()).fingerprint == kf.fingerprint
    unwrap_private_key(parse_keyfile(generated.read_text()), FIRST_PASSPHRASE)
    api = VaultClient(base_url(project))
    api.login("carol", CAROL_PW)
    assert api.call("GET", "/api/key-check").body == {"fingerprint": kf.fingerprint}
    listed = api.call("GET", "/api/secrets").body["secrets"]
    assert {s["name"]: open_envelope(carol_key, s["envelope"]).decode() for s in listed} == SECRETS
    checked = project.run("keys", "check", str(exported), "--passphrase-stdin", input=PASSPHRASE + "\n")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "opened 2 of 2 sampled secrets" in checked.stdout + checked.stderr

    # Someone else's key: dave's, registered for dave, exported by recoverctl's writer.
    dave_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    dave = VaultClient(base_url(project))
    dave.login("dave", DAVE_PW)
    dave.register_key(dave_key)
    dave_file = tmp_path / "dave.zkkey.json"
    dave_file.write_text(json.dumps(make_keyfile(dave_key, DAVE_PASSPHRASE, iterations=100_000)))

    # 2. Back up, erase the database, recover.
    for argv in (("backup",), ("down", "--volumes", "--yes"), ("recover", "--yes")):
        done = project.run(*argv)
        assert done.returncode == 0, f"recoverctl {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    said = done.stdout + done.stderr
    assert "/key-backup/ and sign in, then Import" in said and "/key-check" in said, said

    # 3. A fresh profile, as on a new machine: log in and import.
    second = Person(browsing.fresh_profile(), base_url(project))
    second.log_in("carol", CAROL_PW)
    assert "This browser holds no key" in second.text("#key-status")

    refused = {
        "wrong passphrase": (exported, WRONG_PASSPHRASE, "Wrong passphrase or damaged key file"),
        "damaged file": (damaged_copy(exported, tmp_path / "damaged.json"), PASSPHRASE, "Wrong passphrase or damaged key file"),
        "cut file": (
            _write(tmp_path / "cut.json", exported.read_text()[:300]),
            PASSPHRASE,
            "This is not a valid key backup file:\n- not JSON",
        ),
        "another user's key": (dave_file, DAVE_PASSPHRASE, f"fingerprint is {fingerprint_of(_spki(dave_key))}"),
        # A damaged digit must not hang the tab for hours: refused as recoverctl refuses it.
        "absurd iterations": (
            _edited(exported, tmp_path / "slow.json", kdf={**json.loads(exported.read_text())["kdf"], "iterations": 60_000_000}),
            PASSPHRASE,
            "kdf.iterations is 60000000, above the maximum",
        ),
        "spliced file": (
            _edited(exported, tmp_path / "spliced.json", publicKey=base64.b64encode(_spki(dave_key)).decode()),
            PASSPHRASE,
            "does not match publicKey",
        ),
    }
    for what, (file, passphrase, expected) in refused.items():
        message = second.import_key(file, passphrase)
        assert message.startswith("Import failed:") and expected in message, (what, message)
        assert "Nothing was changed" in message, (what, message)
        assert second.stored_key("carol") is None, what
        assert second.text("#browser-fp") == "none", what
        assert second.page.get_by_role("button", name=re.compile("generate", re.I)).count() == 0, what
        assert "generate a new key" not in message.lower(), (what, message)
    assert f"registered for you (carol) is {kf.fingerprint}" in second.import_key(dave_file, DAVE_PASSPHRASE)

    imported = second.import_key(exported, PASSPHRASE)
    assert imported.startswith(f"Key imported: {kf.fingerprint}"), imported
    stored = second.stored_key("carol")
    assert stored is not None and stored["extractable"] is False, stored
    check = second.key_check()
    assert check.startswith("Key OK") and kf.fingerprint in check, check

    second.open("/secrets/")
    for i, (name, value) in enumerate(SECRETS.items()):
        assert second.reveal(name, keyboard=i == 0) == value
        assert second.hide(name) == (True, ""), name

    # The committed vector (written by Python) imports and opens in the browser too.
    vector = register_vector_user(project)
    vector_file = _write(tmp_path / "vector.zkkey.json", json.dumps(vector["keyFile"]))
    third = Person(browsing.fresh_profile(), base_url(project))
    third.log_in("vector", VEC_PW)
    assert third.import_key(vector_file, vector["testOnlyPassphrase"]).startswith("Key imported")
    assert third.key_check().startswith("Key OK")
    third.open("/secrets/")
    for i, item in enumerate(vector["envelopes"]):
        assert third.reveal(f"vector-{i}") == item["plaintext"]

    # Nothing secret ever left the browser, and the recorder did see the traffic.
    posts = [(r.method, urllib.parse.urlsplit(r.url).path) for r in watch.requests if r.method == "POST"]
    assert posts.count(("POST", "/api/secrets")) == 2 and ("POST", "/api/key") in posts, posts
    needles: dict[str, set[bytes]] = {
        "the first passphrase": forms_of(FIRST_PASSPHRASE),
        "the passphrase": forms_of(PASSPHRASE),
        "the wrong passphrase": forms_of(WRONG_PASSPHRASE),
        "dave's passphrase": forms_of(DAVE_PASSPHRASE),
        "the vector's passphrase": forms_of(vector["testOnlyPassphrase"]),
        "carol's private key": private_key_forms(carol_key),
        **{f"the plaintext of {n}": forms_of(v) for n, v in SECRETS.items()},
        **{f"vector plaintext {i}": forms_of(e["plaintext"]) for i, e in enumerate(vector["envelopes"])},
    }
    found = leaks(watch.requests, needles)
    assert not found, found
    # The recorder sees bodies: the account password does travel, in the login form.
    assert any("/login/" in hit for hit in leaks(watch.requests, {"password": forms_of(CAROL_PW)}))
    assert not watch.problems, watch.problems

    # The pages' security headers, as the real container sends them.
    response = third.open("/key-backup/")
    headers = response.all_headers()
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe" not in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    took = time.monotonic() - started
    print(f"browser walk of playbook section 1: {took:.1f} s, {len(watch.requests)} requests recorded")


def test_the_playbook_names_what_the_pages_show() -> None:
    """playbook.md's clicks are the labels the walk above uses; either side changing fails."""
    section = (REPO / "playbook.md").read_text().split("## 1)")[1].split("\n## ")[0]
    for label in ("Log in", "Key backup → Import", "Key file", "Passphrase", "Import",
                  "Key check", "Key OK", "Secrets → Reveal", "Hide", "Generate a key"):  # fmt: skip
        assert f"**{label}**" in section, label
    assert "`/key-check`" in section


@pytest.fixture(scope="module")
def prod_stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Project]:
    project = make_project(tmp_path_factory.mktemp("browser-prod"), "rctl-e2e-browser-prod", docker_client)
    project.force_clean()
    project.write_env(".env.production")
    up = project.run("up", "--prod")
    assert up.returncode == 0, up.stderr
    yield project
    project.run("down", "--prod", "--volumes", "--yes")
    project.force_clean()


def test_pages_on_the_prod_stack(prod_stack: Project, browsing: Browsing, tmp_path: Path) -> None:
    """DEBUG off, gunicorn, static files collected into the image and served by WhiteNoise."""
    project = prod_stack
    project.create_user("erin", CAROL_PW)
    person = Person(browsing.fresh_profile(), base_url(project))
    person.log_in("erin", CAROL_PW)
    script = person.page.locator("script[type=module]").get_attribute("src") or ""
    assert re.fullmatch(r"/static/vault/vault\.[0-9a-f]{12}\.js", script), script
    served = person.page.request.get(person.base + script)
    assert served.ok and "javascript" in served.headers["content-type"], served.headers
    assert "immutable" in served.headers.get("cache-control", ""), served.headers

    person.generate(FIRST_PASSPHRASE, tmp_path / "erin.zkkey.json")
    person.open("/secrets/")
    person.add_secret("router", SECRETS["bank"])
    assert person.reveal("router") == SECRETS["bank"]
    assert person.key_check().startswith("Key OK")
    unwrap_private_key(parse_keyfile((tmp_path / "erin.zkkey.json").read_text()), FIRST_PASSPHRASE)

    person.page.get_by_role("button", name="Log out").click()
    person.page.wait_for_url("**/login/")
    person.page.goto(person.base + "/secrets/")
    assert urllib.parse.urlsplit(person.page.url).path == "/login/"
    assert not browsing.watch.problems, browsing.watch.problems


def _edited(source: Path, into: Path, **fields: Any) -> Path:
    return _write(into, json.dumps({**json.loads(source.read_text()), **fields}))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
