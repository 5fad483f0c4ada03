"""Key registration, rotation and secret creation: the playbook's rules in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from vault import formats
from vault.models import Secret, UserKey

# Quoted from the ops playbook: losing the old key means losing every secret under it.
NEW_KEY_REFUSED = (
    "a different key is already registered and secrets are encrypted with it: "
    "never generate a new key if you want to read existing data "
    "(import your key backup instead, or rotate by re-encrypting every secret in the same request)"
)


class ServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class KeyResult:
    status: str  # registered | unchanged | replaced | rotated
    fingerprint: str
    secrets_rotated: int = 0


def _lock_user(user: AbstractBaseUser) -> None:
    # Serialises key changes and secret creation per user, so a secret cannot be
    # created under the old key while a rotation is rewriting the others.
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def _check_envelope_for_key(envelope: Any, fingerprint: str, modulus_bits: int, where: str = "") -> dict[str, Any]:
    prefix = f"{where}: " if where else ""
    try:
        formats.validate_envelope(envelope)
    except formats.FormatError as exc:
        raise ServiceError(400, f"{prefix}{exc}") from None
    if envelope["kid"] != fingerprint:
        raise ServiceError(400, f"{prefix}envelope.kid must equal the key fingerprint {fingerprint}")
    if formats.envelope_ek_bytes(envelope) != modulus_bits // 8:
        raise ServiceError(400, f"{prefix}envelope.ek must be {modulus_bits // 8} bytes for this RSA-{modulus_bits} key")
    return envelope


def register_key(
    user: AbstractBaseUser,
    public_key: Any,
    fingerprint: Any,
    algorithm: Any = None,
    rotate: bool = False,
    secrets: Any = None,
) -> KeyResult:
    try:
        spki_b64, fingerprint, algorithm = formats.parse_public_key(public_key, fingerprint, algorithm)
    except formats.FormatError as exc:
        raise ServiceError(400, str(exc)) from None
    bits = int(algorithm["modulusLength"])

    with transaction.atomic():
        _lock_user(user)
        current = UserKey.objects.filter(user=user).first()

        if current is None:
            if rotate:
                raise ServiceError(400, "no key registered yet: register it without 'rotate'")
            UserKey.objects.create(user=user, public_key=spki_b64, fingerprint=fingerprint, algorithm=algorithm)
            return KeyResult("registered", fingerprint)

        if current.fingerprint == fingerprint:
            if rotate:
                raise ServiceError(400, "rotation needs a different key than the registered one")
            return KeyResult("unchanged", fingerprint)

        owned = list(Secret.objects.select_for_update().filter(owner=user).order_by("id"))
        if not rotate:
            if owned:
                raise ServiceError(409, NEW_KEY_REFUSED)
            _replace_key(current, spki_b64, fingerprint, algorithm)
            return KeyResult("replaced", fingerprint)

        updates = _rotation_updates(owned, secrets, fingerprint, bits)
        # Everything was validated before the first write; the transaction covers the rest.
        for secret in owned:
            secret.envelope = updates[secret.id]
            secret.save(update_fields=["envelope", "updated"])
        _replace_key(current, spki_b64, fingerprint, algorithm)
        return KeyResult("rotated", fingerprint, len(owned))


def _replace_key(key: UserKey, spki_b64: str, fingerprint: str, algorithm: dict[str, Any]) -> None:
    key.public_key = spki_b64
    key.fingerprint = fingerprint
    key.algorithm = algorithm
    key.save(update_fields=["public_key", "fingerprint", "algorithm", "updated"])


def _rotation_updates(owned: list[Secret], items: Any, fingerprint: str, bits: int) -> dict[int, dict[str, Any]]:
    if not isinstance(items, list):
        raise ServiceError(400, "rotation needs 'secrets': a list of {id, envelope} for every existing secret")
    updates: dict[int, dict[str, Any]] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != {"id", "envelope"}:
            raise ServiceError(400, f"secrets[{index}] must be an object with exactly 'id' and 'envelope'")
        secret_id = item["id"]
        if isinstance(secret_id, bool) or not isinstance(secret_id, int):
            raise ServiceError(400, f"secrets[{index}].id must be an integer")
        if secret_id in updates:
            raise ServiceError(400, f"secrets[{index}]: secret {secret_id} is listed twice")
        updates[secret_id] = _check_envelope_for_key(item["envelope"], fingerprint, bits, f"secrets[{index}]")
    owned_ids = {secret.id for secret in owned}
    unknown = sorted(set(updates) - owned_ids)
    if unknown:
        # Same answer whether the id exists for someone else or not at all.
        raise ServiceError(400, f"rotation lists unknown secret ids: {unknown}")
    missing = sorted(owned_ids - set(updates))
    if missing:
        raise ServiceError(400, f"rotation must re-encrypt every secret; missing ids: {missing}")
    return updates


def create_secret(user: AbstractBaseUser, name: Any, envelope: Any) -> Secret:
    if not isinstance(name, str) or not name.strip():
        raise ServiceError(400, "name must be a non-empty string")
    if len(name) > Secret._meta.get_field("name").max_length:
        raise ServiceError(400, "name is too long (200 characters at most)")
    with transaction.atomic():
        _lock_user(user)
        key = UserKey.objects.filter(user=user).first()
        if key is None:
            raise ServiceError(409, "no key registered: register your public key first")
        _check_envelope_for_key(envelope, key.fingerprint, int(key.algorithm["modulusLength"]))
        return Secret.objects.create(owner=user, name=name, envelope=envelope)
