"""The vault's JSON API the way the browser uses it: session cookie, CSRF header, real
RSA-OAEP + AES-GCM envelopes made with recoverctl's one implementation of the format."""

from __future__ import annotations

import base64
import http.cookiejar
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recoverctl.core.keyfile import fingerprint_of, open_envelope, seal_envelope


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
