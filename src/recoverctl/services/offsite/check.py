"""`verify --target` without opening the copy: its objects read back from the target and
compared with what was uploaded; with identity_file set, that key is one it was sealed to."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from recoverctl.core.checks import FAIL, OK, WARN, Check
from recoverctl.core.offsite import RemoteManifest, backup_of
from recoverctl.core.progress import OnBytes
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.offsite.listing import resolve_remote
from recoverctl.services.offsite.lookup import load_identities, open_target, owner
from recoverctl.services.offsite.results import SealedCheck
from recoverctl.services.session import StackSession


def check_sealed(
    session: StackSession, target_name: str, name: str, *, on_bytes: OnBytes | None = None
) -> SealedCheck:
    """Reads the copy's objects back and compares them with its remote manifest. Never
    raises for a bad copy (its checks say why); raises when the target cannot be read."""
    started = time.monotonic()
    target = open_target(session, target_name)
    checks: list[Check] = []
    try:
        remote = resolve_remote(target, name, owner(session))
    except RecoverctlError as exc:
        if exc.code is not ErrorCode.OBJECT_CORRUPT:
            raise
        backup = backup_of(Path(name).name)
        checks.append(Check("complete", FAIL, _cause(exc.message), exc.hint or ""))
        return SealedCheck(target_name, target.location, backup, tuple(checks), None,
                           time.monotonic() - started)  # fmt: skip
    m = remote.manifest
    assert m is not None
    checks.append(Check("complete", OK, f"remote manifest, {m.data.name} and {m.manifest.name} "
                        "are there, with the sizes it records"))  # fmt: skip
    done = 0
    for role, ref in (("data", m.data), ("manifest", m.manifest)):
        h = hashlib.sha256()
        size = 0
        for chunk in target.get(ref.name):
            h.update(chunk)
            size += len(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
        if (size, h.hexdigest()) == (ref.size, ref.sha256):
            checks.append(Check(role, OK, f"{ref.name}: {size} bytes, sha256 {ref.sha256[:12]}…: "
                                "intact as uploaded (not opened)"))  # fmt: skip
        else:
            checks.append(Check(
                role, FAIL,
                f"{ref.name}: {size} bytes, sha256 {h.hexdigest()[:12]}…; uploaded were "
                f"{ref.size} bytes, sha256 {ref.sha256[:12]}…: damaged on the target",
                f"Replace it (recoverctl push {m.backup} --target {target_name} --replace) while "
                "the local backup exists; else use another copy.",
            ))  # fmt: skip
    if m.encryption == "age":
        checks.append(Check("encryption", OK, f"sealed with age to {len(m.recipients)} "
                            f"recipient{'s' if len(m.recipients) != 1 else ''}"))  # fmt: skip
        identity = session.settings.identity_file
        if identity is not None:
            checks.append(_opens_with(session, identity, m))
    else:
        checks.append(Check("encryption", WARN, "stored in clear (encryption = \"none\")",
                            f"Remove encryption = \"none\" from [targets.{target_name}]"))  # fmt: skip
    return SealedCheck(target_name, target.location, m.backup, tuple(checks), m,
                       time.monotonic() - started)  # fmt: skip


def _opens_with(session: StackSession, identity: Path, m: RemoteManifest) -> Check:
    """identity_file's public key is one the copy was sealed to (else the day it is needed,
    that key does not open it)."""
    try:
        keys = load_identities(session, identity) or []
    except RecoverctlError as exc:
        return Check("identity", FAIL, _cause(exc.message), exc.hint or "")
    if any(k.recipient in m.recipients for k in keys):
        return Check("identity", OK, f"identity_file {identity} is one of its recipients")
    return Check(
        "identity",
        FAIL,
        f"identity_file {identity} ({', '.join(k.recipient for k in keys)}) is not one of "
        f"its recipients ({', '.join(m.recipients)}): that key cannot open it",
        f"Push it again to the current recipients (recoverctl push {m.backup} --target "
        "NAME --replace), or set identity_file to the key it was sealed to.",
    )


def _cause(message: str) -> str:
    # "target nas (/x): the copy of B is incomplete (...)": the part after the label.
    return " ".join(message.split(": ", 1)[-1].split())
