"""The vault's JSON API the way the browser uses it: session cookie, CSRF header, real
RSA-OAEP + AES-GCM envelopes made with recoverctl's one implementation of the format."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recoverctl.core.keyfile import fingerprint_of, open_envelope
from tests.keywriter import seal_envelope

if TYPE_CHECKING:
    from tests.e2e.conftest import Project


@dataclass
class Response:
    status: int
    body: Any


class VaultClient:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def _csrf(self) -> str:
        for cookie in self.jar:
            if cookie.name == "csrftoken" and cookie.value:
                return cookie.value
        self.call("GET", "/api/csrf")
        return self._csrf()

    def call(self, method: str, path: str, payload: Any = None) -> Response:
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if method != "GET":
            req.add_header("X-CSRFToken", self._csrf())
        try:
            with self.opener.open(req, timeout=30) as resp:
                return Response(resp.status, json.loads(resp.read() or b"null"))
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
            return Response(exc.code, body)

    def login(self, username: str, password: str) -> None:
        r = self.call("POST", "/api/login", {"username": username, "password": password})
        assert r.status == 200, r

    def register_key(self, key: rsa.RSAPrivateKey) -> str:
        der = spki(key)
        fp = fingerprint_of(der)
        r = self.call(
            "POST",
            "/api/key",
            {
                "publicKey": base64.b64encode(der).decode(),
                "fingerprint": fp,
                "algorithm": {"name": "RSA-OAEP", "modulusLength": key.key_size, "hash": "SHA-256"},
            },
        )
        assert r.status in (200, 201), r
        return fp

    def add_secret(self, key: rsa.RSAPrivateKey, name: str, plaintext: str) -> int:
        envelope = seal_envelope(spki(key), plaintext.encode())
        r = self.call("POST", "/api/secrets", {"name": name, "envelope": envelope})
        assert r.status == 201, r
        return int(r.body["id"])

    def reveal_all(self, key: rsa.RSAPrivateKey) -> dict[str, str]:
        r = self.call("GET", "/api/secrets")
        assert r.status == 200, r
        return {s["name"]: open_envelope(key, s["envelope"]).decode() for s in r.body["secrets"]}


def spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


ALICE_PW = "correct-Horse-battery-9"
BOB_PW = "another-Strong-pass-7"


class Vault:
    """The seeded vault: two users, their keys, their secrets."""

    def __init__(self, project: Project):
        self.project = project
        self.alice_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.bob_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.alice_secrets = {"mail": "hunter2", "bank": "s3cr3t-Ω", "wifi": "p@ss word"}

    def client(self) -> VaultClient:
        return VaultClient(f"http://127.0.0.1:{self.project.http_port()}")

    def seed(self) -> None:
        self.project.create_user("alice", ALICE_PW)
        self.project.create_user("bob", BOB_PW)
        alice = self.client()
        alice.login("alice", ALICE_PW)
        alice.register_key(self.alice_key)
        for name, value in self.alice_secrets.items():
            alice.add_secret(self.alice_key, name, value)
        bob = self.client()
        bob.login("bob", BOB_PW)
        bob.register_key(self.bob_key)
        bob.add_secret(self.bob_key, "router", "admin/admin")

    def alice_reads(self) -> dict[str, str]:
        alice = self.client()
        alice.login("alice", ALICE_PW)
        return alice.reveal_all(self.alice_key)
