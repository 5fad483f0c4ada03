"""core/offsite.py: object names, the remote manifest, and telling whole backups apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from recoverctl.core import offsite
from recoverctl.core.manifest import Manifest
from recoverctl.core.offsite import ObjectInfo, RemoteManifest, StoredObject
from recoverctl.errors import ErrorCode, RecoverctlError

B1 = "backup_2026-11-29_203000.dump"
B2 = "backup_2026-11-30_020000.sql"
RECIPIENT = "age1" + "q" * 58
AT = datetime(2026, 11, 29, 20, 30, tzinfo=UTC)
SHA = "a" * 64


OURS = offsite.Owner("vault", "prod")


def obj(name: str, size: int) -> ObjectInfo:
    return ObjectInfo(name=name, size=size, mtime=AT + timedelta(minutes=1))


def remote(
    backup: str = B1, encryption: offsite.Encryption = "age", **over: object
) -> RemoteManifest:
    names = offsite.object_names(backup, encryption)
    fields: dict[str, object] = {
        "backup": backup,
        "fmt": "custom" if backup.endswith(".dump") else "sql",
        "created_at": AT,
        "plain_size": 1000,
        "encryption": encryption,
        "recipients": [RECIPIENT],
        "data": StoredObject(name=names.data, size=1234, sha256=SHA),
        "manifest": StoredObject(name=names.manifest, size=456, sha256="b" * 64),
        "recoverctl_version": "0.1.0",
        "uploaded_at": AT + timedelta(minutes=2),
        "owner": OURS,
    }
    fields.update(over)
    return offsite.new_remote_manifest(**fields)  # type: ignore[arg-type]


def listing_of(m: RemoteManifest, *, data_size: int | None = None) -> list[ObjectInfo]:
    names = m.expected_names()
    return [
        obj(names.data, m.data.size if data_size is None else data_size),
        obj(names.manifest, m.manifest.size),
        obj(names.remote_manifest, len(m.to_bytes())),
    ]


# --- names -----------------------------------------------------------------------------------


def test_object_names_begin_with_the_backup_name() -> None:
    sealed = offsite.object_names(B1)
    assert sealed.all() == (
        f"{B1}.age",
        f"{B1}.json.age",
        f"{B1}.age.manifest.json",
    )
    clear = offsite.object_names(B1, "none")
    assert clear.all() == (B1, f"{B1}.json", f"{B1}.manifest.json")
    # The commit marker is written last: it is the last of the three.
    assert sealed.all()[-1] == sealed.remote_manifest


@pytest.mark.parametrize(
    "name",
    [
        f"{B1}.age",
        f"{B1}.json.age",
        f"{B1}.age.manifest.json",
        f"{B1}.age.partial",
        f"{B1}.age.manifest.json.partial",
        B1,
        f"{B1}.json",
        f"{B1}.manifest.json",
    ],
)
def test_backup_of_leads_back_to_the_backup(name: str) -> None:
    assert offsite.backup_of(name) == B1


# --- the remote manifest ---------------------------------------------------------------------


def test_remote_manifest_round_trip_and_stable_bytes() -> None:
    m = remote()
    raw = m.to_bytes()
    assert raw.endswith(b"\n")
    assert RemoteManifest.from_bytes(raw) == m
    assert RemoteManifest.from_bytes(raw).to_bytes() == raw
    doc = json.loads(raw)
    assert set(doc) == {
        "remote_manifest_version",
        "backup",
        "format",
        "created_at",
        "uploaded_at",
        "plain_size",
        "encryption",
        "recipients",
        "data",
        "manifest",
        "recoverctl_version",
        "project",
        "stack",
    }
    assert (doc["project"], doc["stack"]) == ("vault", "prod")
    assert doc["recipients"] == [RECIPIENT]
    assert doc["data"] == {"name": f"{B1}.age", "size": 1234, "sha256": SHA}


def test_nothing_of_the_vaults_content_is_in_clear() -> None:
    """Table names and row counts live in the local manifest, which travels sealed."""
    local = Manifest(
        file=B1,
        sha256=SHA,
        size=1000,
        format="custom",
        database="vault",
        project="vault-dev",
        stack="dev",
        server_version="15.18",
        pg_dump_version="15.18",
        tables={"public.vault_secret": 4242, "public.auth_user": 17},
        migrations={"vault": "0007_keycheck"},
        started_at=AT,
        duration_seconds=1.5,
        recoverctl_version="0.1.0",
    )
    m = remote(created_at=local.started_at, plain_size=local.size)
    raw = m.to_bytes().decode()
    for secret in ("vault_secret", "auth_user", "4242", "0007_keycheck", "tables", "migrations"):
        assert secret not in raw


def test_new_remote_manifest_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="do not belong"):
        remote(data=StoredObject(name="other.age", size=1, sha256=SHA))
    with pytest.raises(ValueError, match="recipients"):
        remote(recipients=[])
    clear = remote(encryption="none")
    assert clear.recipients == ()
    assert clear.data.name == B1


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"{not json", "is damaged"),
        (b"[]", "is damaged"),
        (json.dumps({"backup": B1}).encode(), "is damaged"),
        (json.dumps({"remote_manifest_version": 99}).encode(), "newer recoverctl"),
    ],
)
def test_damaged_remote_manifests(raw: bytes, expected: str) -> None:
    with pytest.raises(RecoverctlError) as info:
        RemoteManifest.from_bytes(raw, where="target nas")
    assert info.value.code is ErrorCode.MANIFEST_DAMAGED
    assert expected in info.value.message
    assert "target nas" in info.value.message


def test_unknown_fields_from_a_later_minor_change_are_ignored() -> None:
    doc = json.loads(remote().to_bytes())
    doc["something_new"] = 1
    assert RemoteManifest.from_bytes(json.dumps(doc).encode()) == remote()


def test_bad_sha256_is_refused() -> None:
    doc = json.loads(remote().to_bytes())
    doc["data"]["sha256"] = "XYZ"
    with pytest.raises(RecoverctlError):
        RemoteManifest.from_bytes(json.dumps(doc).encode())


# --- classify --------------------------------------------------------------------------------


def classify(objects: list[ObjectInfo], *manifests: RemoteManifest) -> offsite.Listing:
    parsed: dict[str, RemoteManifest | None] = {
        m.expected_names().remote_manifest: m for m in manifests
    }
    assert sorted(parsed) == sorted(offsite.remote_manifest_names(objects))
    return offsite.classify(objects, parsed)


def test_a_whole_backup_is_complete() -> None:
    m = remote()
    judged = classify(listing_of(m), m)
    [b] = judged.backups
    assert (b.backup, b.complete, b.problems, b.leftovers) == (B1, True, (), ())
    assert b.manifest == m
    assert b.created_at == AT
    assert b.stored_size == 1234 + 456 + len(m.to_bytes())
    assert judged.complete == (b,) and judged.incomplete == ()
    assert judged.find(B1) is b and judged.find(B2) is None


def test_unencrypted_backups_are_judged_the_same_way() -> None:
    m = remote(encryption="none")
    assert classify(listing_of(m), m).backups[0].complete


def test_without_its_manifest_a_backup_is_incomplete() -> None:
    m = remote()
    objects = listing_of(m)[:2]  # the commit marker never came
    [b] = offsite.classify(objects, {}).backups
    assert not b.complete
    assert b.problems == ("no remote manifest: the upload did not finish",)
    assert [o.name for o in b.objects] == [f"{B1}.age", f"{B1}.json.age"]


def test_an_unreadable_manifest_makes_it_incomplete() -> None:
    m = remote()
    [b] = offsite.classify(listing_of(m), {m.expected_names().remote_manifest: None}).backups
    assert not b.complete and "unreadable" in b.problems[0]


def test_a_manifest_with_no_data_is_incomplete() -> None:
    m = remote()
    objects = [o for o in listing_of(m) if not o.name.endswith(".dump.age")]
    [b] = classify(objects, m).backups
    assert not b.complete
    assert b.problems == (f"{B1}.age is missing",)


def test_a_short_object_is_incomplete() -> None:
    m = remote()
    [b] = classify(listing_of(m, data_size=1000), m).backups
    assert not b.complete
    assert b.problems == (f"{B1}.age has 1000 bytes, the manifest says 1234",)


def test_a_manifest_describing_another_backup_is_incomplete() -> None:
    other = remote(B2)
    # B2's manifest stored under B1's marker name
    objects = [*listing_of(remote())[:2], obj(offsite.object_names(B1).remote_manifest, 10)]
    [b] = offsite.classify(objects, {offsite.object_names(B1).remote_manifest: other}).backups
    assert not b.complete
    assert any(f"describes {B2}" in p for p in b.problems)


def test_partials_are_never_complete() -> None:
    m = remote()
    partial = obj(f"{B2}.age.partial", 99)
    stray = obj(f"{B1}.age.partial", 50)
    judged = classify([*listing_of(m), partial, stray], m)
    whole = judged.find(B1)
    lone = judged.find(B2)
    assert whole is not None and whole.complete and whole.leftovers == (stray,)
    assert lone is not None and not lone.complete and lone.objects == (partial,)
    # A partial commit marker counts for nothing either.
    marker = obj(m.expected_names().remote_manifest + ".partial", 10)
    [b] = offsite.classify([*listing_of(m)[:2], marker], {}).backups
    assert not b.complete


def test_foreign_objects_are_set_apart_and_newest_come_first() -> None:
    a, b = remote(B1), remote(B2)
    objects = [
        obj("README.txt", 5),
        *listing_of(a),
        obj("notes.json", 2),
        *listing_of(b),
    ]
    judged = classify(objects, a, b)
    assert [x.backup for x in judged.backups] == [B2, B1]
    assert [o.name for o in judged.foreign] == ["README.txt", "notes.json"]


def test_custom_backup_names() -> None:
    """Another naming scheme (e.g. vault-dev_20261129_203000.dump) plugs in its predicate."""
    name = "vault-dev_20261129_203000.dump"
    m = remote(name)
    judged = offsite.classify(
        listing_of(m),
        {m.expected_names().remote_manifest: m},
        is_backup=lambda n: n.startswith("vault-dev_"),
        sort_key=lambda n: n,
    )
    assert judged.backups[0].complete and judged.foreign == ()


def test_an_empty_target() -> None:
    assert offsite.classify([], {}) == offsite.Listing(backups=())
