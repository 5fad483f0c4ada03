"""An S3-compatible target (AWS, MinIO, Ceph, Garage, Backblaze, ...), through boto3.

Uploads stream: the source is cut into parts of `part_size` bytes, so memory holds about
two parts whatever the object's size; an object smaller than one part goes in one PUT.
A multipart upload that fails for any reason, Ctrl-C included, is aborted before the error
goes on, so no orphan parts stay behind (and bill) on the bucket. S3 shows an object only
once its upload completes, so there is no `.partial` here.

Checksums: newer botocore sends CRC checksums by default, which several S3-compatible
services reject or ignore; "when_required" keeps to what every service understands.
Integrity is ours anyway: the sha256 of what was uploaded goes into the remote manifest
(a multipart ETag is not an MD5) and is checked on download.

Credentials come from the standard AWS chain (environment, ~/.aws/credentials, the
`profile` named in the settings, instance roles): never from recoverctl's own settings.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import boto3
import botocore.exceptions as bx
from botocore.config import Config

from recoverctl import signals
from recoverctl.adapters.targets.base import (
    CHUNK,
    ObjectInfo,
    Source,
    Target,
    check_name,
    chunks_of,
)
from recoverctl.errors import ErrorCode, RecoverctlError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

PART_SIZE = 8 << 20
MIN_PART_SIZE = 5 << 20  # S3's floor for every part but the last
MAX_PARTS = 10_000

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
        part_size: int = PART_SIZE,
        max_attempts: int = 3,
        connect_timeout: float = 10,
        read_timeout: float = 60,
    ):
        super().__init__(name)
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        self.bucket = bucket
        self.prefix = normalize_prefix(prefix)
        self.endpoint_url = endpoint_url
        self.region = region
        self.profile = profile
        self.part_size = part_size
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
                session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
                self._client = session.client(
                    "s3", endpoint_url=self.endpoint_url, config=self._config
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
        first = next(parts, b"")
        if len(first) < self.part_size:  # the source ended within one part
            with self._errors("uploading", name):
                self.client.put_object(Bucket=self.bucket, Key=key, Body=first)
            return ObjectInfo(name, len(first), datetime.now(UTC))
        return self._multipart(name, key, first, parts)

    def _multipart(self, name: str, key: str, first: bytes, rest: Iterator[bytes]) -> ObjectInfo:
        with self._errors("starting the upload", name):
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        done: list[CompletedPartTypeDef] = []
        size = 0
        try:
            part: bytes | None = first
            while part is not None:
                if len(done) >= MAX_PARTS:
                    raise self.error(
                        ErrorCode.TARGET_FAILED,
                        f"the object needs more than {MAX_PARTS} parts of {self.part_size} bytes.",
                        "Raise the part size.",
                        name=name,
                    )
                number = len(done) + 1
                with self._errors(f"uploading part {number}", name):
                    etag = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                    )["ETag"]
                done.append({"ETag": etag, "PartNumber": number})
                size += len(part)
                # Dropped before the next part is read, so memory holds about two parts;
                # and an exception from the source arrives here, inside the try that aborts.
                part = None
                part = next(rest, None)
            with self._errors("completing the upload", name):
                self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": done},
                )
        except BaseException as exc:
            self._abort(key, upload_id, exc)
            raise
        return ObjectInfo(name, size, datetime.now(UTC))

    def _abort(self, key: str, upload_id: str, cause: BaseException) -> None:
        # A second Ctrl-C must not cut the abort short and leave the parts behind.
        held = (
            signals.deferred(reraise=False)
            if threading.current_thread() is threading.main_thread()
            else contextlib.nullcontext()
        )
        with held:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except Exception:
                if isinstance(cause, RecoverctlError):
                    cause.hint = (
                        cause.hint + " " if cause.hint else ""
                    ) + "Its unfinished upload could not be aborted: the next push removes it."

    def discard_unfinished(self) -> int:
        """Aborts multipart uploads left under the prefix by a run that could not abort its
        own (the connection was gone). Returns how many."""
        count = 0
        with self._errors("listing unfinished uploads", bucket_op=True):
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
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


def _parts(source: Source, size: int) -> Iterator[bytes]:
    """The source cut into parts of at least `size` bytes (the last may be shorter)."""
    buf: list[bytes] = []
    held = 0
    for chunk in chunks_of(source):
        buf.append(chunk)
        held += len(chunk)
        if held >= size:
            part = b"".join(buf)
            buf.clear()
            held = 0
            yield part
    if buf:
        yield b"".join(buf)
