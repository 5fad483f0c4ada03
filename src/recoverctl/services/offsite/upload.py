"""How every push writes to a target (a backup's copy, the env files): its objects first,
then the manifest LAST, the commit marker: until it is written nothing of the upload looks
complete, whatever failed or was cut short on the way. When a put fails, what the upload
wrote is removed again while the target answers; when it does not, or on Ctrl-C, the next
push tidies it (it has no marker, so it is never taken for a copy).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from recoverctl.errors import ErrorCode, RecoverctlError

if TYPE_CHECKING:
    from recoverctl.adapters.targets import ObjectInfo, Source, Target


class Upload:
    """The objects one upload put on a target, in order, and its marker, written last."""

    def __init__(self, target: Target):
        self.target = target
        self.written: list[str] = []
        self.committed = False

    def put(self, name: str, source: Source) -> ObjectInfo:
        """One of the upload's objects. Named before its put: it may be stored even when
        the put, or a check after it, fails."""
        assert not self.committed, "nothing is written after the commit marker"
        self.written.append(name)
        return self.target.put(name, source)

    def keep(self, name: str) -> None:
        """Not this upload's to remove on a failure: its put never replaced what is there."""
        if name in self.written:
            self.written.remove(name)

    def commit(self, name: str, body: bytes) -> ObjectInfo:
        """The marker, last: from now on the upload is a whole copy."""
        assert not self.committed, "an upload has one commit marker"
        info = self.target.put(name, iter([body]))
        self.committed = True
        return info


@contextlib.contextmanager
def committing(target: Target, removed: list[str]) -> Iterator[Upload]:
    """An upload to target that ends with its commit marker. A RecoverctlError on the way
    removes what it wrote (each name removed is appended to `removed`, a failed removal is
    left for the next push) and is raised again; a target that cannot be reached is not
    asked to."""
    upload = Upload(target)
    try:
        yield upload
    except RecoverctlError as exc:
        if exc.code is not ErrorCode.TARGET_UNREACHABLE:
            # Not a copy without its marker anyway; tidied while the target answers.
            for name in upload.written:
                with contextlib.suppress(RecoverctlError):
                    target.delete(name)
                    removed.append(name)
        raise
    assert upload.committed, "an upload ends with its commit marker"


def check_stored(target: Target, name: str, stored: int, sent: int) -> None:
    """The target kept every byte of the object sent."""
    if stored != sent:
        raise target.error(
            ErrorCode.TARGET_FAILED,
            f"it stored {stored} bytes of the {sent} sent.",
            "Check the target's free space and health, then push again.",
            name=name,
        )
