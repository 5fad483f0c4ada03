"""The key export against a running vault: read and parse it, find whose key it is, and open
a sample of that user's secrets. `keys check` proves the live vault with it; a recovery
drill proves the restored one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl.adapters import vault
from recoverctl.core.keyfile import (
    EnvelopeError,
    KeyFile,
    KeyFileError,
    open_envelope,
    parse_keyfile,
)
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from recoverctl.adapters.engine import Engine

SAMPLE = 3


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


def read_keyfile(path: Path) -> KeyFile:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(
            f"Cannot read {path}: {exc}.", "Check the file and its permissions."
        ) from None
    return parse_keyfile(text)


def owner(engine: Engine, project: str, kf: KeyFile) -> str:
    """The vault user whose registered key this export is; KEY_MISMATCH when nobody's."""
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
    return str(users[0]["username"])


@dataclass(frozen=True)
class Opened:
    user: str
    secrets_total: int
    sampled: int
    opened: int


def open_sample(
    engine: Engine, project: str, kf: KeyFile, private_key: rsa.RSAPrivateKey, size: int = SAMPLE
) -> Opened:
    """Opens up to size of the owner's stored secrets; KEY_MISMATCH unless every one opens.
    Plaintexts are dropped at once: proving they open is enough."""
    user = owner(engine, project, kf)
    sample = vault.envelopes(engine, project, kf.fingerprint, size)
    envelopes = [item["envelope"] for item in sample.get("sample", [])]
    opened = 0
    for envelope in envelopes:
        try:
            open_envelope(private_key, envelope)
        except EnvelopeError:
            continue
        opened += 1
    if opened < len(envelopes):
        raise RecoverctlError(
            f"Opened {opened} of {len(envelopes)} sampled secrets of {user}: the others "
            "were encrypted with another key or are damaged.",
            "Restore them from a backup taken before they broke; keep this key backup.",
            code=ErrorCode.KEY_MISMATCH,
        )
    return Opened(user, int(sample.get("total", 0)), len(envelopes), opened)
