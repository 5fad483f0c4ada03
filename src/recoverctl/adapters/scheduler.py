"""The machine's schedulers: systemd (system or user manager) and cron (/etc/cron.d or the
user's crontab). Programs are run with argv lists, never through a shell."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recoverctl.adapters import fsio, process
from recoverctl.errors import CommandFailed, ErrorCode, RecoverctlError

SYSTEM_UNITS = "etc/systemd/system"
CRON_D = "etc/cron.d"
LINGER = "var/lib/systemd/linger"
CALENDAR_TIMEOUT = 30.0
CALENDAR_HINT = (
    "Check that systemd-analyze runs here (systemd's tools), or pass --every instead "
    "(e.g. --every 1d)."
)


def calendar_ok(spec: str) -> bool | None:
    """Whether systemd-analyze accepts spec as an OnCalendar= value; None when it is not
    installed (nothing to ask). One that cannot run or does not answer is a CommandFailed."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    try:
        done = process.run(
            [analyze, "calendar", spec],
            check=False,
            timeout=CALENDAR_TIMEOUT,
            what="systemd-analyze calendar",
            hint=CALENDAR_HINT,
        )
    except OSError as exc:  # found, but not runnable (not executable, a broken interpreter)
        raise CommandFailed(
            f"systemd-analyze could not run: {exc.strerror or exc}.", CALENDAR_HINT
        ) from None
    return done.returncode == 0


@dataclass(frozen=True)
class Host:
    """This machine, seen from `root` (tests point it at a folder of their own)."""

    root: Path = Path("/")
    # Off in tests: no systemctl or crontab is run, only files are written.
    run_programs: bool = True

    @property
    def is_root(self) -> bool:
        return os.geteuid() == 0

    @property
    def user(self) -> str:
        return pwd.getpwuid(os.geteuid()).pw_name

    def systemd_running(self) -> bool:
        # sd_booted(): the manager creates this folder; a container without it has no systemd.
        return (self.root / "run/systemd/system").is_dir() and (
            not self.run_programs or shutil.which("systemctl") is not None
        )

    def unit_dir(self) -> Path:
        if self.is_root:
            return self.root / SYSTEM_UNITS
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return self.root / base.lstrip("/") / "systemd/user"

    def lingering(self) -> bool:
        return (self.root / LINGER / self.user).exists()

    def cron_dir(self) -> Path:
        return self.root / CRON_D

    def cron_installed(self) -> bool:
        return not self.run_programs or any(
            shutil.which(name) for name in ("cron", "crond", "crontab")
        )

    def has_crontab(self) -> bool:
        return not self.run_programs or shutil.which("crontab") is not None

    def uses_crontab(self) -> bool:
        """Whether this user's crontab may hold our entry (root's entries go to cron.d)."""
        return not self.run_programs or (not self.is_root and self.has_crontab())

    # files

    def write(self, path: Path, text: str, mode: int = 0o644) -> None:
        """Whole or not at all: a half-written unit or cron file is never read. The partial
        name has dots, which cron.d ignores."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        fsio.remove_quietly(partial)
        try:
            partial.write_text(text, encoding="utf-8")
            partial.chmod(mode)
            with open(partial, "rb") as f:
                os.fsync(f.fileno())
            os.replace(partial, path)
            fsio.fsync_dir(path.parent)
        except OSError as exc:
            fsio.remove_quietly(partial)
            raise RecoverctlError(
                f"Could not write {path}: {exc.strerror or exc}.",
                "Run it as the user who owns that folder (root for system units and cron.d).",
                code=ErrorCode.WRITE_FAILED,
            ) from None

    def remove(self, path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise RecoverctlError(
                f"Could not remove {path}: {exc.strerror or exc}.",
                "Run it as the user who installed the schedule.",
                code=ErrorCode.WRITE_FAILED,
            ) from None
        return True

    # programs

    def systemctl(self, *args: str, check: bool = True) -> process.Completed | None:
        if not self.run_programs:
            return None
        argv = ["systemctl", *([] if self.is_root else ["--user"]), *args]
        return process.run(
            argv,
            check=check,
            timeout=60,
            hint="Check `systemctl status` and the journal (journalctl -xe).",
        )

    def read_crontab(self) -> str:
        if not self.run_programs:
            path = self.root / "crontab"
            return path.read_text() if path.exists() else ""
        done = process.run(["crontab", "-l"], check=False, timeout=30)
        # "no crontab for USER" is an empty crontab, not an error.
        return done.stdout if done.returncode == 0 else ""

    def write_crontab(self, text: str) -> None:
        if not self.run_programs:
            (self.root / "crontab").write_text(text)
            return
        try:
            done = subprocess.run(
                ["crontab", "-"], input=text, capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandFailed(f"crontab - failed: {exc}.", "Check that cron is installed.") from None
        if done.returncode != 0:
            raise CommandFailed(
                f"crontab refused the new crontab (exit {done.returncode}).",
                "Its message is above; your previous crontab is unchanged.",
                details=done.stderr.strip() or None,
            )

    def systemctl_show(self, unit: str, *props: str) -> dict[str, str]:
        if not self.run_programs:
            return {}
        with contextlib.suppress(RecoverctlError):
            done = self.systemctl("show", unit, *(f"--property={p}" for p in props), check=False)
            if done is not None and done.returncode == 0:
                pairs = (line.partition("=") for line in done.stdout.splitlines())
                return {k: v for k, _, v in pairs if k}
        return {}


def program() -> Sequence[str]:
    """How to start this recoverctl from a timer: absolute, the same interpreter and venv.
    The console script beside the interpreter when there is one, else `python -m`."""
    python = os.path.abspath(sys.executable)  # not resolved: a venv's python is a symlink
    script = Path(python).parent / "recoverctl"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (python, "-m", "recoverctl")
