"""What the S3 target does to stay within a backup's memory bound (issue 12: < 80 MiB),
checked without a server: the trimmed endpoints table resolves S3 and the credential
chain's services exactly as botocore's full table does; parts are exact and grow as they
fill; the allocator setting takes on this (glibc) machine."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import botocore.session
import pytest

from recoverctl.adapters import allocator
from recoverctl.adapters.targets import s3
from recoverctl.adapters.targets.s3 import ENDPOINT_SERVICES, S3Target, _parts


def _regions() -> list[str]:
    full = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    regions = ["aws-global", "us-east-1"]  # STS's global endpoint comes from the table
    for partition in full["partitions"]:
        # A couple per partition: aws, aws-cn, aws-us-gov, the isolated ones.
        regions += sorted(partition["regions"])[:2]
    return regions


def _where(session: botocore.session.Session, service: str, region: str) -> tuple[object, ...]:
    client: Any = session.create_client(
        service, region_name=region, aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x"
    )
    if service == "s3":
        # The ruleset decides the URL of each request; a presigned URL shows it offline.
        url = client.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    else:
        url = client.meta.endpoint_url
    parts = urlsplit(url)
    # The query's names show how the request is signed (SigV4's X-Amz-Credential names the
    # signing region); its values hold the time.
    signing = sorted(
        (k, v.split("/")[2] if k == "X-Amz-Credential" else "") for k, v in parse_qsl(parts.query)
    )
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"
    return (
        where,
        client.meta.region_name,
        str(getattr(client.meta.config, "signature_version", None)),
        signing,
    )


# The services whose resolution reads the table (SSO's does not: its entries are kept in
# case a later botocore does).
@pytest.mark.parametrize("service", ["s3", "sts"])
def test_the_trimmed_table_resolves_like_the_full_one(service: str) -> None:
    full = botocore.session.get_session()
    trimmed = s3.botocore_session()
    for region in _regions():
        assert _where(trimmed, service, region) == _where(full, service, region), region


def test_the_trimmed_table_holds_only_the_services_kept() -> None:
    loader = s3.botocore_session().get_component("data_loader")
    data = loader.load_data("endpoints")
    kept = {name for p in data["partitions"] for name in p["services"]}
    assert kept and kept <= ENDPOINT_SERVICES
    full = botocore.session.get_session().get_component("data_loader").load_data("endpoints")
    assert sum(len(p["services"]) for p in full["partitions"]) > 10 * len(kept)


def test_the_trimmed_loader_keeps_botocores_search_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DATA_PATH", "/opt/models:$HOME/models")
    monkeypatch.setenv("HOME", "/home/someone")
    loader = s3.botocore_session().get_component("data_loader")
    assert loader.search_paths[:2] == ["/opt/models", "/home/someone/models"]


def test_parts_are_exact_and_the_last_is_the_rest() -> None:
    size = 10
    data = bytes(range(37))
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    parts = list(_parts(chunks, size))
    assert [len(p) for p in parts] == [10, 10, 10, 7]
    assert b"".join(parts) == data
    assert all(isinstance(p, bytearray) for p in parts)


def test_parts_of_an_empty_source_and_of_an_exact_multiple() -> None:
    assert list(_parts([], 4)) == []
    assert [bytes(p) for p in _parts([b"abcdefgh"], 4)] == [b"abcd", b"efgh"]


def test_one_part_in_flight_unless_the_settings_ask_for_more() -> None:
    assert S3Target("t", bucket="bucket").concurrency == 1
    assert S3Target("t", bucket="bucket", concurrency=3).concurrency == 3


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_allocator_takes_the_threshold_on_this_machine() -> None:
    # These machines run glibc: a False here means the bound's saving silently went away.
    assert allocator.tune() is True
