import sys

import pytest

from recoverctl.adapters.process import mask, run, shown
from recoverctl.errors import CommandFailed


def test_mask_hides_every_secret_longest_first() -> None:
    assert mask("pw=abc abcdef", ["abc", "abcdef"]) == "pw=*** ***"
    assert mask("nothing", ["", "x"]) == "nothing"
    assert shown(["psql", "hunter2"], ["hunter2"]) == "psql ***"


def test_failure_keeps_a_masked_stderr_tail() -> None:
    code = (
        "import sys\nfor i in range(40): print('line', i, 's3cret', file=sys.stderr)\nsys.exit(3)"
    )
    with pytest.raises(CommandFailed) as info:
        run([sys.executable, "-c", code], secrets=["s3cret"], what="the thing")
    err = info.value
    assert err.message == "the thing failed (exit 3)."
    assert err.details is not None
    assert "s3cret" not in err.details and "line 39 ***" in err.details
    assert "line 10 " not in err.details  # only the tail is kept


def test_missing_program_is_a_clear_error() -> None:
    with pytest.raises(CommandFailed) as info:
        run(["recoverctl-no-such-program"])
    assert "is not installed or not on PATH" in info.value.message


def test_timeout_is_reported() -> None:
    with pytest.raises(CommandFailed) as info:
        run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3, what="sleeper")
    assert info.value.message == "sleeper did not finish within 0 s."


def test_check_false_returns_the_code() -> None:
    done = run([sys.executable, "-c", "print('out'); raise SystemExit(4)"], check=False)
    assert (done.returncode, done.stdout) == (4, "out\n")
