"""An S3-compatible target (AWS, MinIO, Ceph, Garage, Backblaze, ...), through boto3's S3
client. The client is made by botocore's session, which boto3's own wraps: boto3's import
pulls in its transfer manager (s3transfer, a noticeable share of every S3 command's
start-up), whose multipart uploads and downloads this target does itself, in bounded memory.

Uploads stream: the source is cut into parts of `part_size` bytes, `concurrency` of them
uploading at once, so memory holds that many parts whatever the object's size; an object
smaller than one part goes in one PUT.
A multipart upload that fails for any reason, Ctrl-C included, is aborted before the error
goes on, so no orphan parts stay behind (and bill) on the bucket. S3 shows an object only
once its upload completes, so there is no `.partial` here.

Checksums: newer botocore sends CRC checksums by default, which several S3-compatible
services reject or ignore; "when_required" keeps to what every service understands.
Integrity is ours anyway: the sha256 of what was uploaded goes into the remote manifest
(a multipart ETag is not an MD5) and is checked on download.

Credentials come from the standard AWS chain (environment, ~/.aws/credentials, the
`profile` named in the settings, instance roles): never from recoverctl's own settings.

Memory: botocore parses its table of every AWS service's endpoints (endpoints.json, about
7 MiB once in Python objects) to make any client, and keeps it. A backup's peak RSS is
bounded (under 80 MiB with the dump, the sealing and the parts in flight), so the
client's loader keeps the entries of the services this target talks to: S3, and those the
credential chain may call (STS for assumed roles, SSO). Resolution for those services is
unchanged (tests/unit/test_s3_memory.py compares it with the full table, region by
region).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, cast
from urllib.parse import urlsplit, urlunsplit

import botocore.exceptions as bx
import botocore.loaders
import botocore.session
from botocore.config import Config

from recoverctl import signals
from recoverctl.adapters.targets.base import (
    CHUNK,
    ObjectInfo,
    Source,
    Target,
    check_name,
    check_namespace,
    chunks_of,
)
from recoverctl.errors import ErrorCode, RecoverctlError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_SIZE = 5 << 20  # S3's floor for every part but the last
# Memory holds CONCURRENCY parts (S3's floor in size: 50 GB objects at most). One at a time
# keeps a backup's push under its 80 MiB bound, and uploads as fast as two to a server
# near by (bench/offsite.py); `parts_in_flight` raises it for a slow link.
PART_SIZE = MIN_PART_SIZE
CONCURRENCY = 1
MAX_PARTS = 10_000
# The services whose endpoints the client may need: this target's, and the credential
# chain's (assumed roles, web identity, SSO).
ENDPOINT_SERVICES = frozenset({"s3", "sts", "sso", "sso-oidc"})

_REFUSED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "403",
}
_WRONG_REGION = {
    "PermanentRedirect",
    "AuthorizationHeaderMalformed",
    "301",
    "IllegalLocationConstraintException",
}
_BUSY = {"SlowDown", "ServiceUnavailable", "InternalError", "503", "500", "RequestTimeout"}


class S3Target(Target):
    kind = "s3"

    def __init__(
        self,
        name: str,
        *,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        namespace: str = "",
        ca_file: str | None = None,
        part_size: int = PART_SIZE,
        concurrency: int = CONCURRENCY,
        max_attempts: int = 3,
        connect_timeout: float = 10,
        read_timeout: float = 60,
    ):
        super().__init__(name)
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = normalize_prefix(
            "/".join([prefix.strip("/"), *check_namespace(namespace)]).strip("/")
        )
        self.endpoint_url = endpoint_url
        self.region = region
        self.profile = profile
        self.ca_file = ca_file
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.read_timeout = read_timeout
        self._config = Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            # Virtual-host addressing needs a DNS name per bucket, which S3-compatible
            # services on a plain host or IP seldom have: AWS understands both styles.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._client: S3Client | None = None

    @property
    def location(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}"
        if self.endpoint_url:
            where += f" at {_without_userinfo(self.endpoint_url)}"
        return where

    @property
    def client(self) -> S3Client:
        if self._client is None:
            try:
                self._client = cast(
                    "S3Client",
                    botocore_session(self.profile).create_client(
                        "s3",
                        region_name=self.region,
                        endpoint_url=self.endpoint_url,
                        config=self._config,
                        # A private CA (the target's ca_file), else the system's.
                        verify=self.ca_file,
                    ),
                )
            except bx.ProfileNotFound:
                raise self.error(
                    ErrorCode.CONFIG_INVALID,
                    f"AWS profile {self.profile!r} is not in ~/.aws/config or ~/.aws/credentials.",
                    f"Add it, or fix profile in [targets.{self.name}].",
                ) from None
            except (bx.BotoCoreError, ValueError) as exc:
                raise self.error(
                    ErrorCode.CONFIG_INVALID,
                    f"cannot set up the S3 client: {type(exc).__name__}.",
                    f"Check endpoint_url and region in [targets.{self.name}].",
                ) from None
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def key(self, name: str) -> str:
        return self.prefix + name

    # Operations.

    def check(self) -> None:
        with self._errors("checking the bucket", bucket_op=True):
            self.client.head_bucket(Bucket=self.bucket)

    def put(self, name: str, source: Source) -> ObjectInfo:
        key = self.key(check_name(name, for_write=True))
        parts = _parts(source, self.part_size)
        first = next(parts, None)
        if first is None or len(first) < self.part_size:  # the source ended within one part
            body = first or bytearray()
            with self._errors("uploading", name):
                # A bytes() copy would hold the object twice (see _upload_part).
                self.client.put_object(Bucket=self.bucket, Key=key, Body=cast(bytes, body))
            return ObjectInfo(name, len(body), datetime.now(UTC))
        # Handed over in a list the callee empties: no frame keeps the first part alive
        # for the whole upload.
        held = [first]
        del first
        return self._multipart(name, key, held, parts)

    def _multipart(
        self, name: str, key: str, held: list[bytearray], rest: Iterator[bytearray]
    ) -> ObjectInfo:
        """Parts upload `concurrency` at a time, in threads, while this thread reads the next
        one from the source: memory holds `concurrency` parts, whatever the object's size.
        The source is read here, in the caller's thread, so its errors (and Ctrl-C) arrive
        inside the try that aborts the upload."""
        with self._errors("starting the upload", name):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        etags: dict[int, str] = {}
        size = 0
        number = 0
        inflight: dict[Future[str], int] = {}
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="recoverctl-s3")
        try:
            part: bytearray | None = held.pop()
            while part is not None:
                if number >= MAX_PARTS:
                    raise self.error(
                        ErrorCode.TARGET_FAILED,
                        f"the object needs more than {MAX_PARTS} parts of {self.part_size} bytes.",
                        "Raise the part size.",
                        name=name,
                    )
                number += 1
                size += len(part)
                job = pool.submit(self._upload_part, name, key, upload_id, number, part)
                inflight[job] = number
                part = None  # the thread holds it now, and drops it when sent
                while len(inflight) >= self.concurrency:
                    self._settle(inflight, etags, FIRST_COMPLETED)
                part = next(rest, None)
            while inflight:
                self._settle(inflight, etags, ALL_COMPLETED)
            parts: list[CompletedPartTypeDef] = [
                {"ETag": etags[n], "PartNumber": n} for n in sorted(etags)
            ]
            with self._errors("completing the upload", name):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )
        except BaseException as exc:
            self._abort(key, upload_id, exc, tuple(inflight))
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return ObjectInfo(name, size, datetime.now(UTC))

    def _upload_part(
        self, name: str, key: str, upload_id: str, number: int, body: bytearray
    ) -> str:
        with self._errors(f"uploading part {number}", name):
            return self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                # botocore takes any bytes-like body; the stubs name only bytes, and a
                # bytes() copy would double the part in memory.
                Body=cast(bytes, body),
            )["ETag"]

    @staticmethod
    def _settle(inflight: dict[Future[str], int], etags: dict[int, str], when: str) -> None:
        finished, _ = wait(inflight, return_when=when)
        for job in finished:
            number = inflight.pop(job)
            etags[number] = job.result()  # a part's failure is raised here, as it was

    def _abort(
        self, key: str, upload_id: str, cause: BaseException, inflight: tuple[Future[str], ...] = ()
    ) -> None:
        # A second Ctrl-C must not cut the abort short and leave the parts behind.
        held = (
            signals.deferred(reraise=False)
            if threading.current_thread() is threading.main_thread()
            else contextlib.nullcontext()
        )
        with held:
            # Parts still on their way would land after the abort and stay, billed: let
            # them end first (a dead connection ends them at its read timeout).
            for job in inflight:
                job.cancel()
            wait(inflight, timeout=self.read_timeout)
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:
                if isinstance(cause, RecoverctlError):
                    cause.hint = (
                        cause.hint + " " if cause.hint else ""
                    ) + "Its unfinished upload could not be aborted: the next push removes it."

    def discard_unfinished(self, older_than: timedelta = timedelta(0)) -> int:
        """Aborts multipart uploads left under the prefix (the namespace's: never another
        stack's) by a run that could not abort its own (the connection was gone), initiated
        more than older_than ago: a younger one may be a push still on its way. Returns how
        many."""
        count = 0
        cutoff = datetime.now(UTC) - older_than
        with self._errors("listing unfinished uploads", bucket_op=True):
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    initiated = upload.get("Initiated")
                    if initiated is None or initiated.astimezone(UTC) > cutoff:
                        continue
                    if "/" in upload["Key"][len(self.prefix) :]:
                        continue  # deeper: not this namespace's
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    count += 1
        return count

    def get(self, name: str) -> Iterator[bytes]:
        key = self.key(check_name(name))
        with self._errors("downloading", name):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return self._stream(body, name)

    def _stream(self, body: Any, name: str) -> Iterator[bytes]:
        try:
            with self._errors("downloading", name):
                # botocore checks the byte count against Content-Length at the end: a cut
                # connection raises instead of ending the stream early.
                yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        found: list[ObjectInfo] = []
        with self._errors("listing", bucket_op=True):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"
            ):
                for obj in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            name=obj["Key"][len(self.prefix) :],
                            size=obj["Size"],
                            mtime=obj["LastModified"].astimezone(UTC),
                        )
                    )
        return sorted(found, key=lambda o: o.name)

    def delete(self, name: str) -> None:
        with self._errors("removing", name):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(check_name(name)))

    def stat(self, name: str) -> ObjectInfo | None:
        try:
            with self._errors("reading", name):
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(check_name(name)))
        except RecoverctlError as exc:
            if exc.code is not ErrorCode.OBJECT_NOT_FOUND:
                raise
            # A HEAD answers a bare 404 for a missing bucket too: tell the two apart.
            self.check()
            return None
        return ObjectInfo(name, head["ContentLength"], head["LastModified"].astimezone(UTC))

    # Errors.

    @contextlib.contextmanager
    def _errors(
        self, doing: str, name: str | None = None, *, bucket_op: bool = False
    ) -> Iterator[None]:
        try:
            yield
        except bx.ClientError as exc:
            self._client_error(exc, doing, name, bucket_op)
        except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError):
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                "no usable AWS credentials were found.",
                "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an entry in "
                f'~/.aws/credentials, or profile = "..." in [targets.{self.name}].',
            ) from None
        except (bx.ConnectionError, bx.HTTPClientError, bx.IncompleteReadError) as exc:
            cut = isinstance(
                exc, (bx.IncompleteReadError, bx.ResponseStreamingError, bx.ConnectionClosedError)
            )
            raise self.error(
                ErrorCode.TARGET_UNREACHABLE,
                ("the connection was lost while " if cut else "cannot connect while ")
                + doing
                + ".",
                "Check the network and that the service answers at the endpoint, then try again.",
                name=name,
            ) from None
        except bx.BotoCoreError as exc:
            raise self.error(
                ErrorCode.TARGET_FAILED,
                f"{type(exc).__name__} while {doing}.",
                f"Check [targets.{self.name}], then try again.",
                name=name,
            ) from None

    def _client_error(
        self, exc: bx.ClientError, doing: str, name: str | None, bucket_op: bool
    ) -> NoReturn:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (bucket_op and code in ("404", "NotFound")):
            raise self.error(
                ErrorCode.TARGET_NOT_FOUND,
                f"bucket {self.bucket} does not exist.",
                f"Create it, or fix bucket (and endpoint_url) in [targets.{self.name}].",
            ) from None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise self.not_found(name or "?") from None
        if code in _REFUSED or status == 403:
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"the service refused the credentials or the access ({code or status}) while {doing}.",
                "Check the AWS credentials used for this target and their rights on the bucket.",
                name=name,
            ) from None
        if code in _WRONG_REGION:
            raise self.error(
                ErrorCode.TARGET_REFUSED,
                f"the bucket is in another region ({code}).",
                f"Set region in [targets.{self.name}] to the bucket's region.",
            ) from None
        if code in _BUSY:
            raise self.error(
                ErrorCode.TARGET_UNREACHABLE,
                f"the service is unavailable ({code}) while {doing}.",
                "Try again later.",
                name=name,
            ) from None
        message = str(err.get("Message", ""))[:200]
        raise self.error(
            ErrorCode.TARGET_FAILED,
            f"{code or status} while {doing}" + (f": {message}" if message else "") + ".",
            f"Check [targets.{self.name}] and the bucket, then try again.",
            name=name,
        ) from None


class _Loader(botocore.loaders.Loader):
    """botocore's data loader, with the endpoints table cut down to ENDPOINT_SERVICES."""

    def load_data_with_path(self, name: str) -> tuple[Any, str]:
        data, path = super().load_data_with_path(name)
        if name == "endpoints":
            _keep_services(data, ENDPOINT_SERVICES)
        return data, path


def _keep_services(endpoints: Any, keep: frozenset[str]) -> None:
    # In place: the loader caches what it returned, and the dropped entries are freed now.
    for partition in endpoints.get("partitions", ()):
        services = partition.get("services")
        if isinstance(services, dict):
            for service in [s for s in services if s not in keep]:
                del services[service]


def botocore_session(profile: str | None = None) -> botocore.session.Session:
    """A botocore session (the AWS profile's, when named) whose data loader, a public
    component, trims the endpoints table; search paths as botocore's own (AWS_DATA_PATH,
    ~/.aws/models)."""
    session = botocore.session.Session(profile=profile)
    extra = session.get_config_variable("data_path")
    paths = (
        [os.path.expanduser(os.path.expandvars(p)) for p in extra.split(os.pathsep)]
        if extra
        else []
    )
    session.register_component("data_loader", _Loader(extra_search_paths=paths))
    return session


def normalize_prefix(prefix: str) -> str:
    """A prefix is a folder: "prod" and "/prod/" both mean keys under "prod/"."""
    prefix = prefix.strip("/")
    return prefix + "/" if prefix else ""


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _parts(source: Source, size: int) -> Iterator[bytearray]:
    """The source cut into parts of exactly `size` bytes (the last may be shorter), each
    filled in place in a buffer of its own: no part is copied or joined. A buffer grows as
    it fills (a zeroed one of `size` would be memory touched for nothing when the object is
    small), and parts large enough to be mapped grow without copies."""
    buf = bytearray()
    for chunk in chunks_of(source):
        view = memoryview(chunk)
        while view:
            n = min(size - len(buf), len(view))
            buf += view[:n]
            view = view[n:]
            if len(buf) == size:
                yield buf
                buf = bytearray()
    if buf:
        yield buf


def credentials(profile: str | None) -> tuple[str, str, str | None] | None:
    """The access key, secret and session token botocore's chain finds (the same chain as
    the target's own client), frozen now; None when it finds none."""
    found = botocore_session(profile).get_credentials()
    if found is None:
        return None
    frozen = found.get_frozen_credentials()
    if not frozen.access_key or not frozen.secret_key:
        return None
    return frozen.access_key, frozen.secret_key, frozen.token
