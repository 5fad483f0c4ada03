"""keys check: the key backup unwraps with its passphrase and opens the vault's own data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recoverctl.adapters import vault
from recoverctl.core.keyfile import (
    EnvelopeError,
    KeyFileError,
    open_envelope,
    parse_keyfile,
    unwrap_private_key,
)
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

SAMPLE = 3


@dataclass(frozen=True)
class KeyCheckResult:
    path: Path
    fingerprint: str
    modulus: int
    iterations: int
    passphrase_checked: bool
    user: str | None = None
    secrets_total: int = 0
    sampled: int = 0
    opened: int = 0



def key_path(settings: Settings, given: Path | None) -> Path:
    path = given or settings.key_file
    if path is None:
        raise UsageError(
            "No key backup given, and none configured.",
            "Pass the .zkkey.json file, or set key_file in ~/.config/recoverctl/config.toml.",
        )
    if not path.is_file():
        raise RecoverctlError(
            f"No key backup at {path}.",
            "Check the path; export the key again from the vault's Key backup page if it is lost.",
            code=ErrorCode.KEY_FILE_INVALID,
        )
    return path


def check(session: StackSession, given: Path | None, passphrase: str | None) -> KeyCheckResult:
    path = key_path(session.settings, given)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(
            f"Cannot read {path}: {exc}.", "Check the file and its permissions."
        ) from None
    kf = parse_keyfile(text)
    base = KeyCheckResult(
        path, kf.fingerprint, kf.modulus_length, kf.iterations, passphrase is not None
    )
    if passphrase is None:
        return base
    private_key = unwrap_private_key(kf, passphrase)
    engine, project = session.engine, session.project
    report = vault.report(engine, project)
    users = [u for u in report.get("users", []) if u.get("fingerprint") == kf.fingerprint]
    if not users:
        registered = sum(1 for u in report.get("users", []) if u.get("fingerprint"))
        raise RecoverctlError(
            f"This key belongs to no user of this vault ({registered} users have registered keys).",
            "It is another vault's key, or an old key replaced since: find the export that "
            "matches. Never register a new key while secrets exist: they would stay unreadable.",
            code=ErrorCode.KEY_MISMATCH,
        )
    sample = vault.envelopes(engine, project, kf.fingerprint, SAMPLE)
    envelopes = [item["envelope"] for item in sample.get("sample", [])]
    opened = 0
    for envelope in envelopes:
        try:
            open_envelope(private_key, envelope)
        except EnvelopeError:
            continue
        opened += 1  # the plaintext is dropped at once: proving it opens is enough
    result = KeyCheckResult(
        path, kf.fingerprint, kf.modulus_length, kf.iterations, True,
        user=str(users[0]["username"]), secrets_total=int(sample.get("total", 0)),
        sampled=len(envelopes), opened=opened,
    )  # fmt: skip
    if opened < len(envelopes):
        raise RecoverctlError(
            f"Opened {opened} of {len(envelopes)} sampled secrets of {result.user}: the others "
            "were encrypted with another key or are damaged.",
            "Restore them from a backup taken before they broke; keep this key backup.",
            code=ErrorCode.KEY_MISMATCH,
        )
    return result
