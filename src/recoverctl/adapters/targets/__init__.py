"""Storage targets for off-site copies: one interface (`Target`), three kinds.

    with open_target("nas", settings.targets["nas"]) as target:
        info = target.put("backup_...dump.age", chunks)

`open_target` imports a kind's library only when that kind is used: boto3 and paramiko
take a noticeable time to import, and most commands never touch a target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recoverctl.adapters.targets.base import Measured, ObjectInfo, Source, Target

if TYPE_CHECKING:
    from recoverctl.settings import TargetSettings

__all__ = ["Measured", "ObjectInfo", "Source", "Target", "open_target"]


def open_target(name: str, settings: TargetSettings, namespace: str = "") -> Target:
    """The target configured as [targets.NAME]; it connects on first use. With namespace
    ("PROJECT/STACK"), every object lives in that folder (or key prefix) under the target's
    path or prefix, and nothing outside it is ever listed, read or removed."""
    if settings.type == "dir":
        from recoverctl.adapters.targets.dir import DirTarget

        return DirTarget(name, settings.path, namespace=namespace)
    if settings.type == "s3":
        from recoverctl.adapters.targets.s3 import S3Target

        return S3Target(
            name,
            bucket=settings.bucket,
            prefix=settings.prefix,
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            profile=settings.profile,
            namespace=namespace,
            ca_file=str(settings.ca_file) if settings.ca_file else None,
            concurrency=settings.parts_in_flight,
        )
    from recoverctl.adapters.targets.sftp import SftpTarget

    return SftpTarget(
        name,
        host=settings.host,
        port=settings.port,
        user=settings.user,
        path=settings.path,
        key_file=settings.key_file,
        known_hosts=settings.known_hosts,
        namespace=namespace,
    )
