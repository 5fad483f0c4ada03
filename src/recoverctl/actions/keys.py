"""keys check: the key backup unwraps with its passphrase and opens the vault's own data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recoverctl.core.keyfile import unwrap_private_key
from recoverctl.core.result import JsonResult
from recoverctl.services import keys
from recoverctl.services.session import StackSession


@dataclass(frozen=True)
class KeyCheckResult(JsonResult):
    path: Path
    fingerprint: str
    modulus: int
    iterations: int
    passphrase_checked: bool
    user: str | None = None
    secrets_total: int = 0
    sampled: int = 0
    opened: int = 0


def check(session: StackSession, given: Path | None, passphrase: str | None) -> KeyCheckResult:
    path = keys.key_path(session.settings, given)
    kf = keys.read_keyfile(path)
    base = KeyCheckResult(
        path, kf.fingerprint, kf.modulus_length, kf.iterations, passphrase is not None
    )
    if passphrase is None:
        return base
    private_key = unwrap_private_key(kf, passphrase)
    found = keys.open_sample(session.engine, session.project, kf, private_key)
    return KeyCheckResult(
        path, kf.fingerprint, kf.modulus_length, kf.iterations, True,
        user=found.user, secrets_total=found.secrets_total, sampled=found.sampled,
        opened=found.opened,
    )  # fmt: skip
