"""S3 target details that moto cannot show: an unfinished upload's age."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from recoverctl.adapters.targets.s3 import S3Target


class FakeClient:
    def __init__(self, uploads: list[dict[str, Any]]):
        self.uploads = uploads
        self.aborted: list[str] = []
        self.prefixes: list[str] = []

    def get_paginator(self, _op: str) -> FakeClient:
        return self

    def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        self.prefixes.append(Prefix)
        return [{"Uploads": [u for u in self.uploads if u["Key"].startswith(Prefix)]}]

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str) -> None:
        self.aborted.append(Key)


def test_only_our_namespaces_old_unfinished_uploads_are_aborted() -> None:
    now = datetime.now(UTC)
    uploads = [
        {"Key": "prod/vault/dev/old.age", "UploadId": "1", "Initiated": now - timedelta(hours=3)},
        {"Key": "prod/vault/dev/young.age", "UploadId": "2", "Initiated": now},
        {"Key": "prod/vault/prod/old.age", "UploadId": "3", "Initiated": now - timedelta(hours=3)},
        {"Key": "prod/vault/devx/old.age", "UploadId": "4", "Initiated": now - timedelta(hours=3)},
    ]
    target = S3Target("offsite", bucket="b", prefix="prod", namespace="vault/dev")
    client = FakeClient(uploads)
    target._client = client  # type: ignore[assignment]
    assert target.prefix == "prod/vault/dev/"
    assert target.discard_unfinished(timedelta(hours=1)) == 1
    assert client.aborted == ["prod/vault/dev/old.age"]
    assert client.prefixes == ["prod/vault/dev/"]
