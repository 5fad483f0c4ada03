"""services/offsite/upload.py, which both pushes (a backup's copy, the env files) write
through: objects first, the marker last; what a failed upload wrote is removed again, unless
the target cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoverctl.adapters.targets.dir import DirTarget
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.offsite.upload import check_stored, committing


def _names(target: DirTarget) -> list[str]:
    return sorted(o.name for o in target.list())


def test_objects_then_the_marker(tmp_path: Path) -> None:
    target = DirTarget("nas", tmp_path)
    removed: list[str] = []
    with committing(target, removed) as upload:
        upload.put("a", iter([b"1"]))
        upload.put("b", iter([b"22"]))
        marker = upload.commit("m", b"333")
        with pytest.raises(AssertionError):
            upload.put("c", iter([b"late"]))
    assert marker.size == 3 and _names(target) == ["a", "b", "m"] and removed == []


@pytest.mark.parametrize(
    ("code", "left"),
    [(ErrorCode.TARGET_FAILED, ["old"]), (ErrorCode.TARGET_UNREACHABLE, ["a", "b", "old"])],
)
def test_a_failure_removes_what_was_written(
    tmp_path: Path, code: ErrorCode, left: list[str]
) -> None:
    target = DirTarget("nas", tmp_path)
    target.put("old", iter([b"x"]))
    removed: list[str] = []
    with pytest.raises(RecoverctlError) as info, committing(target, removed) as upload:
        upload.put("a", iter([b"1"]))
        upload.put("b", iter([b"2"]))
        raise target.error(code, "it failed.", "Try again.")
    assert info.value.code is code
    assert _names(target) == left
    assert removed == ([] if code is ErrorCode.TARGET_UNREACHABLE else ["a", "b"])


def test_kept_is_never_removed(tmp_path: Path) -> None:
    target = DirTarget("nas", tmp_path)
    removed: list[str] = []
    with pytest.raises(RecoverctlError), committing(target, removed) as upload:
        upload.put("a", iter([b"1"]))
        upload.keep("a")
        check_stored(target, "a", 1, 2)
    assert _names(target) == ["a"] and removed == []


def test_check_stored_says_what_was_kept(tmp_path: Path) -> None:
    target = DirTarget("nas", tmp_path)
    check_stored(target, "a", 5, 5)
    with pytest.raises(RecoverctlError) as info:
        check_stored(target, "a", 3, 5)
    assert info.value.code is ErrorCode.TARGET_FAILED
    assert "it stored 3 bytes of the 5 sent." in info.value.message
