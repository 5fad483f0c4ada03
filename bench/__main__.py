"""python -m bench [--size small|large] [--repeat N]: recoverctl against the raw playbook.

Builds a throwaway stack (compose project rctl-bench), fills its database with
`pgbench -i`, then measures in one run, interleaved round by round so that drift on the
machine spreads over every measurement alike:

  backup   in-container pg_dump to /dev/null (the limit), the playbook's
           `docker compose exec -T db pg_dump > file`, and `recoverctl backup`, each format;
  restore  raw `pg_restore`/`psql` of recoverctl's own backup file into a fresh database,
           the same restore done by hand (stop the app, drop, create, pg_restore, start,
           wait until healthy), and `recoverctl restore FILE --yes --no-safety-backup`,
           each format, plus `recoverctl restore FILE --yes` (custom) to price the safety
           backup; the app's downtime as each restore's --json reports it;
  verify   `recoverctl verify FILE` and `--deep`, each format, `--deep` back to back with a
           raw restore of the same file, in turns first (at least 5 rounds: judged on
           medians);
  drill    `recoverctl drill --from FILE` (custom): the recovery time beside restore's,
           and each step beside restore's steps (the drill's own: start-up, checks);
  startup  `recoverctl --help` and `recoverctl ps`.

Writes bench/results/<size>-<timestamp>.md and .json, prints the targets as PASS/MISS, and
tears the stack down whatever happens. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.projectcopy import REPO

from bench import measure, report
from bench.common import (
    Log,
    command_text,
    guarded_run,
    images,
    interrupt_on_sigterm,
    machine_info,
    machine_lock,
)
from bench.measure import Series
from bench.stack import DB_NAME, DB_USER, BenchStack

SCALES = {"small": 5, "large": 60}
DEFAULT_REPEAT = {"small": 5, "large": 5}  # medians of 5: the targets are judged on them
BYTES_PER_SCALE = 15_100_000  # pgbench -i: about 15 MB of database per unit of scale
RAW_DB = "bench_raw"
PROJECT = "rctl-bench"
STARTUP_MIN_REPEAT = 5
DRILL_MAX_REPEAT = 3  # a drill builds and starts a whole stack: fewer rounds
VERIFY_MIN_REPEAT = report.MEDIAN_MIN_RUNS  # verify --deep is judged on a median of 5 or more
QUIET_WAIT = 120  # seconds an autovacuum worker may take before a measurement starts anyway


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="recoverctl against the raw playbook and the physical limit (issue 5).",
    )
    p.add_argument(
        "--size",
        choices=sorted(SCALES),
        default="small",
        help="small: pgbench scale 5 (a few minutes); large: scale 60 (about 905 MB)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each measurement (default: 5; verify and start-up: at least 5)",
    )
    p.add_argument("--scale", type=int, default=None, help="override the size's pgbench scale")
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the throwaway project and its dumps go (default: a new temp dir)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=REPO / "bench" / "results",
        help="where the .md and .json reports go (default: bench/results)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack and its files in place afterwards (for profiling)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = DEFAULT_REPEAT[args.size]
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.scale is None:
        args.scale = SCALES[args.size]
    return args  # fmt: skip


def check_disk(workdir: Path, scale: int, log: Log) -> None:
    """Dumps land in workdir; the engine holds the database, a scratch copy and a raw copy."""
    need = 3 * scale * BYTES_PER_SCALE + 1_000_000_000
    docker_root = (
        command_text(["docker", "info", "--format", "{{.DockerRootDir}}"]) or "/var/lib/docker"
    )
    for label, where in (("work folder", workdir), ("Docker root", Path(docker_root))):
        try:
            free = shutil.disk_usage(where).free
        except OSError:
            continue
        log(f"free space, {label} {where}: {free / 1e9:.1f} GB (needs about {need / 1e9:.1f} GB)")
        if free < need:
            raise SystemExit(f"Not enough free space in {where} for scale {scale}.")


class Bench:
    def __init__(self, stack: BenchStack, args: argparse.Namespace, log: Log):
        self.stack = stack
        self.args = args
        self.log = log
        self.series: dict[str, Series] = {}
        self.steps: dict[str, dict[str, list[float]]] = {}
        self.files: dict[str, Path] = {}  # the newest recoverctl backup of each format
        self.meta: dict[str, Any] = {}
        (stack.root / "raw").mkdir(exist_ok=True)

    # --- bookkeeping -------------------------------------------------------------------

    def s(self, key: str, label: str, command: str, *, rss: bool = False) -> Series:
        if key not in self.series:
            self.series[key] = Series(key, label, command, track_rss=rss)
        return self.series[key]

    def rc(self, *args: str) -> str:
        return "recoverctl " + " ".join(shlex.quote(a) for a in args)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.stack.root))
        except ValueError:
            return str(path)

    def quiet(self) -> None:
        """Untimed, before each measurement: the vault database vacuumed (a restore leaves
        millions of new rows, and autovacuum would start on them within a minute, in the
        middle of whatever runs next), no autovacuum worker busy, dirty pages written."""
        self.stack.psql("VACUUM", DB_NAME)
        deadline = time.monotonic() + QUIET_WAIT
        busy = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        while self.stack.psql(busy) != "0" and time.monotonic() < deadline:
            time.sleep(0.5)
        self.stack.psql("CHECKPOINT")

    def timed_shell(self, key: str, label: str, command: str) -> measure.Run:
        self.quiet()
        done = self.stack.shell(command)
        self.s(key, label, command).add(done.seconds)
        return done

    def timed_rc(self, key: str, label: str, *args: str) -> tuple[measure.Run, Any]:
        self.quiet()
        done, payload = self.stack.recoverctl_json(*args)
        self.s(key, label, self.rc(*args, "--json"), rss=True).add(done.seconds, done.max_rss_kb)
        return done, payload

    def forget_backup(self, path: Path) -> None:
        for suffix in ("", ".json", ".verify.json"):
            Path(str(path) + suffix).unlink(missing_ok=True)

    # --- phases ------------------------------------------------------------------------

    def build(self) -> None:
        st = self.stack
        self.log(f"pgbench -i -s {self.args.scale} in {st.db}")
        done = st.docker_exec("pgbench", "-i", "-q", "-s", str(self.args.scale), "-U", DB_USER,
                              DB_NAME)  # fmt: skip
        self.meta["pgbench_init_seconds"] = round(done.seconds, 2)
        self.meta["database_bytes"] = int(
            st.psql("SELECT pg_database_size(current_database())", DB_NAME)
        )
        self.meta["server_version"] = st.psql("SHOW server_version")
        self.log(
            f"database: {self.meta['database_bytes'] / 1e6:.0f} MB, built in {done.seconds:.0f} s"
        )

    def warm_up(self) -> None:
        self.log("warm-up (untimed): one pg_dump to /dev/null, one recoverctl --help")
        self.stack.shell(self.limit_cmd("custom"))
        self.stack.recoverctl("--help")

    def limit_cmd(self, fmt: str) -> str:
        flag = "-Fc" if fmt == "custom" else "-Fp"
        inner = f"pg_dump -U {DB_USER} -d {DB_NAME} {flag} > /dev/null"
        return f"docker exec {self.stack.db} sh -c {shlex.quote(inner)}"

    def backups(self, round_no: int) -> None:
        st = self.stack
        for fmt, flag, ext in (("sql", "-Fp", "sql"), ("custom", "-Fc", "dump")):
            self.timed_shell(
                f"dump.limit.{fmt}",
                f"limit: in-container pg_dump {flag} to /dev/null",
                self.limit_cmd(fmt),
            )
            self.timed_shell(
                f"dump.raw.{fmt}",
                f"playbook: compose exec -T pg_dump {flag} > file",
                f"{st.compose_prefix()} exec -T db pg_dump -U {DB_USER} -d {DB_NAME} {flag} "
                f"> raw/{DB_NAME}.{ext}",
            )
            _, payload = self.timed_rc(
                f"backup.{fmt}", f"recoverctl backup --format {fmt}", "backup", "--format", fmt
            )
            new = Path(payload["path"])
            if fmt in self.files and self.files[fmt] != new:
                self.forget_backup(self.files[fmt])
            self.files[fmt] = new
        self.log(
            f"backup round {round_no}: "
            + ", ".join(
                f"{k} {self.series[k].samples[-1]:.2f}s"
                for k in self.series
                if k.startswith(("dump.", "backup."))
            )
        )

    def fresh_raw_db(self) -> None:
        self.stack.psql(f"DROP DATABASE IF EXISTS {RAW_DB} WITH (FORCE)")
        self.stack.psql(f"CREATE DATABASE {RAW_DB} TEMPLATE template0")

    def raw_restores(self, prefix: str, where: str = "") -> None:
        """pg_restore and psql of recoverctl's own backups, each into a fresh database
        (created and dropped outside the timing): PREFIX.custom and PREFIX.sql."""
        for fmt in ("custom", "sql"):
            self.raw_restore(prefix, fmt, where)

    def raw_restore(self, prefix: str, fmt: str, where: str = "") -> None:
        st = self.stack
        path = shlex.quote(self.rel(self.files[fmt]))
        self.fresh_raw_db()
        if fmt == "custom":
            self.timed_shell(
                f"{prefix}.custom",
                f"raw: pg_restore of the same file into a fresh database{where}",
                f"docker exec -i {st.db} pg_restore -U {DB_USER} -d {RAW_DB} --no-owner "
                f"--no-acl --exit-on-error < {path}",
            )
        else:
            self.timed_shell(
                f"{prefix}.sql",
                f"raw: cat file | psql into a fresh database{where}",
                f"cat {path} | docker exec -i {st.db} psql -X -q -v ON_ERROR_STOP=1 "
                f"-U {DB_USER} -d {RAW_DB} > /dev/null",
            )
        st.psql(f"DROP DATABASE IF EXISTS {RAW_DB} WITH (FORCE)")

    def restores(self, round_no: int) -> None:
        custom, sql = self.files["custom"], self.files["sql"]
        self.raw_restores("restore.raw")
        self.timed_shell(
            "restore.byhand.custom",
            "by hand: stop the backend, drop and create the database, pg_restore, start, "
            "wait until healthy",
            self.by_hand(custom),
        )
        for fmt, path in (("custom", custom), ("sql", sql)):
            _, payload = self.timed_rc(
                f"restore.{fmt}",
                f"recoverctl restore ({fmt}) --no-safety-backup",
                "restore", self.rel(path), "--yes", "--no-safety-backup",
            )  # fmt: skip
            self.record_steps(fmt, payload)
            self.record_downtime(f"downtime.{fmt}", f"restore ({fmt}, no safety backup)", payload)
        _, payload = self.timed_rc(
            "restore.custom.safety",
            "recoverctl restore (custom) with its safety backup",
            "restore", self.rel(custom), "--yes",
        )  # fmt: skip
        per = self.record_steps("custom+safety", payload)
        self.record_downtime("downtime.custom.safety", "restore (custom, safety backup)", payload)
        safety = self.s(
            "restore.safety_step",
            "of which: the safety backup (step time from restore --json)",
            "(step `safety backup of …` in restore --json)",
        )
        safety.add(per.get("safety backup", 0.0))
        if payload.get("safety_backup"):
            self.forget_backup(Path(payload["safety_backup"]))
        self.log(
            f"restore round {round_no}: "
            + ", ".join(
                f"{k} {self.series[k].samples[-1]:.2f}s"
                for k in self.series
                if k.startswith(("restore.", "downtime."))
            )
        )

    def record_downtime(self, key: str, what: str, payload: dict[str, Any]) -> None:
        """The app's downtime as restore --json reports it: from the first stop asked of
        the engine to healthy again (result.app_downtime_seconds)."""
        seconds = payload.get("app_downtime_seconds")
        if seconds is None:
            raise RuntimeError(f"{what}: restore --json reported no app_downtime_seconds")
        self.s(
            key,
            f"app downtime during recoverctl {what}",
            "(app_downtime_seconds in restore --json)",
        ).add(float(seconds))

    def by_hand(self, dump: Path) -> str:
        """What restore does, done with the raw tools the way a careful operator would, minus
        what only recoverctl does: the live data is dropped first (no scratch copy, no swap,
        nothing to roll back to), and no hash or row count is checked."""
        st = self.stack
        backend = f"{st.project}-backend-1"
        drop_create = (
            f"-c 'DROP DATABASE {DB_NAME} WITH (FORCE)' "
            f"-c 'CREATE DATABASE {DB_NAME} TEMPLATE template0'"
        )
        healthy = f"docker exec {backend} /opt/venv/bin/python /app/healthcheck.py 2>/dev/null"
        return " && ".join(
            (
                f"{st.compose_prefix()} stop backend 2>/dev/null",
                f"docker exec {st.db} psql -X -q -U {DB_USER} -d postgres {drop_create}",
                f"docker exec -i {st.db} pg_restore -U {DB_USER} -d {DB_NAME} --no-owner "
                f"--no-acl --exit-on-error < {shlex.quote(self.rel(dump))}",
                f"{st.compose_prefix()} start backend 2>/dev/null",
                f"timeout 120 sh -c {shlex.quote(f'until {healthy}; do sleep 0.1; done')}",
            )
        )

    def record_steps(self, label: str, payload: dict[str, Any]) -> dict[str, float]:
        per: dict[str, float] = {}
        for step in payload.get("steps", []):
            name = _step_name(str(step["step"]))
            per[name] = per.get(name, 0.0) + float(step["seconds"])
        per["(total inside restore)"] = float(payload.get("seconds", 0.0))
        into = self.steps.setdefault(label, {})
        for name, seconds in per.items():
            into.setdefault(name, []).append(seconds)
        return per

    def verifies(self, round_no: int) -> None:
        """verify quick and deep, each format. Each --deep runs back to back with the raw
        restore of the same file it is judged against (ratios of medians over >= 5 rounds),
        the raw one first in odd rounds and second in even ones, so that neither always
        follows the same work (the drop of the other's 1 GB database, say)."""
        raw_first = round_no % 2 == 1
        for fmt in ("custom", "sql"):
            if raw_first:
                self.raw_restore("verify.raw", fmt, " (verify round)")
            self.verify(fmt, deep=True)
            if not raw_first:
                self.raw_restore("verify.raw", fmt, " (verify round)")
        for fmt in ("custom", "sql"):
            self.verify(fmt, deep=False)
        self.log(
            f"verify round {round_no}: "
            + ", ".join(
                f"{k} {self.series[k].samples[-1]:.2f}s"
                for k in self.series
                if k.startswith("verify.")
            )
        )

    def verify(self, fmt: str, *, deep: bool) -> None:
        kind = "deep" if deep else "quick"
        args = ["verify", self.rel(self.files[fmt]), *(["--deep"] if deep else [])]
        self.timed_rc(
            f"verify.{kind}.{fmt}", f"recoverctl verify{' --deep' if deep else ''} ({fmt})", *args
        )

    def drills(self, round_no: int) -> None:
        """recoverctl drill of the custom backup: a second stack (PROJECT-drill) built,
        started, restored into, checked and removed. Its recovery time (start to the restored
        vault serving) stands beside restore's, and its steps beside restore's steps: the
        overhead is the stack's start-up and the checks."""
        custom = self.files["custom"]
        _, payload = self.timed_rc(
            "drill.custom",
            "recoverctl drill (custom): the whole drill, its stack removed",
            "drill", "--from", self.rel(custom),
        )  # fmt: skip
        recovery = float(payload["recovery_seconds"])
        self.s(
            "drill.recovery.custom",
            "of which: the recovery time (start to the restored vault serving its data)",
            "(recovery_seconds in drill --json)",
        ).add(recovery)
        per: dict[str, float] = {}
        for step in payload.get("steps", []):
            name = _drill_step_name(str(step["step"]))
            per[name] = per.get(name, 0.0) + float(step["seconds"])
        per["(recovery time)"] = recovery
        per["(total inside drill)"] = float(payload["seconds"])
        into = self.steps.setdefault("drill (custom)", {})
        for name, seconds in per.items():
            into.setdefault(name, []).append(seconds)
        self.log(
            f"drill round {round_no}: {self.series['drill.custom'].samples[-1]:.2f}s, "
            f"recovery {recovery:.2f}s"
        )

    def startup(self, repeat: int) -> None:
        for _ in range(repeat):
            for key, args in (("startup.help", ("--help",)), ("startup.ps", ("ps",))):
                done = self.stack.recoverctl(*args)
                self.s(key, f"start-up: recoverctl {args[0]}", self.rc(*args), rss=True).add(
                    done.seconds, done.max_rss_kb
                )
        self.log(
            f"startup: --help median {self.series['startup.help'].median:.3f}s, "
            f"ps median {self.series['startup.ps'].median:.3f}s"
        )

    def run(self) -> None:
        n = self.args.repeat
        self.build()
        self.warm_up()
        for r in range(1, n + 1):
            self.backups(r)
        self.meta["dump_bytes"] = {fmt: p.stat().st_size for fmt, p in self.files.items()}
        for r in range(1, n + 1):
            self.restores(r)
        self.meta["verify_repeat"] = max(n, VERIFY_MIN_REPEAT)
        for r in range(1, self.meta["verify_repeat"] + 1):
            self.verifies(r)
        self.meta["drill_repeat"] = min(n, DRILL_MAX_REPEAT)
        for r in range(1, self.meta["drill_repeat"] + 1):
            self.drills(r)
        self.meta["startup_repeat"] = max(n, STARTUP_MIN_REPEAT)
        self.startup(self.meta["startup_repeat"])


def _drill_step_name(text: str) -> str:
    """A drill's step as a row of the steps table: its restore's steps on restore's own
    rows, the rest as `drill: …` without the run-specific parts."""
    if text.startswith("restore: "):
        return _step_name(text.removeprefix("restore: "))
    return "drill: " + text.split(" (")[0].replace(f" {PROJECT}-drill", "")


def _step_name(text: str) -> str:
    """`restoring backup_….dump into vault__…` -> `restoring`: names without run-specific parts."""
    if text.startswith("safety backup"):
        return "safety backup"
    if text.startswith("starting the app"):
        return "starting the app" + (", waiting until healthy" if "healthy" in text else "")
    if text.startswith("waiting"):
        return "waiting until the app is healthy"
    if text.startswith("comparing"):
        return "comparing row counts again" + (" (+ drop the old copy)" if "drop" in text else "")
    if text.startswith("checking"):
        return "checking row counts, ANALYZE" + (" (+ stop the app)" if "stopping" in text else "")
    return text.split()[0]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = Log("bench")
    imgs = images(
        "run `make bench`, or set them as `make test-env` prints "
        "(e.g. POSTGRES_IMAGE=recoverctl-test/postgres:15)."
    )
    interrupt_on_sigterm()
    _lock = machine_lock(PROJECT, log)  # held until the process ends
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="rctl-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    check_disk(workdir, args.scale, log)
    stack = BenchStack.create(workdir, PROJECT, imgs)
    bench = Bench(stack, args, log)
    bench.meta.update(
        size=args.size,
        scale=args.scale,
        repeat=args.repeat,
        startup_repeat=max(args.repeat, STARTUP_MIN_REPEAT),
        images=imgs,
        project=PROJECT,
        started_at=started.strftime("%Y-%m-%d %H:%M:%S"),
        machine=machine_info(PROJECT),
        recoverctl_version=stack.recoverctl("--version").stdout.split()[-1],
        raw_pipeline="docker compose -p PROJECT -f docker-compose.dev.yml exec -T db pg_dump",
        source=command_text(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        source_changes=command_text(
            ["git", "-C", str(REPO), "status", "--porcelain", "src"]
        ).splitlines(),
        rss_method="wait4(2) ru_maxrss of the recoverctl process (and its reaped children)",
    )
    failed: BaseException | None = None
    try:
        failed = guarded_run(stack, PROJECT, workdir, bench.run, log)
    finally:
        _teardown(stack, workdir, args.keep, log)
    bench.meta["finished_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    bench.meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if failed is not None:
        bench.meta["failed"] = f"{type(failed).__name__}: {failed}"
    bench.meta["other_size"] = report.other_size(args.results, args.size)
    found = report.targets(bench.series, bench.steps, bench.meta)
    stem = f"{args.size}-{started:%Y%m%d-%H%M%S}" + ("-failed" if failed else "")
    md, js = report.write(args.results, stem, bench.meta, bench.series, bench.steps, found)
    print(md.read_text())
    print("Targets:")
    for t in found:
        print("  " + t.line())
    print(f"\nWritten: {md}\n         {js}")
    if failed is not None:
        return 130 if isinstance(failed, KeyboardInterrupt) else 1
    if args.strict and any(t.verdict == "MISS" for t in found):
        return 1
    return 0


def _teardown(stack: BenchStack, workdir: Path, keep: bool, log: Callable[[str], None]) -> None:
    if keep:
        log(
            f"--keep: the stack is still up. Tear it down with: cd {workdir} && "
            f"RECOVERCTL_PROJECT_NAME={PROJECT} recoverctl down --volumes --yes"
        )
        return
    log("recoverctl down --volumes --yes")
    # A second Ctrl-C or SIGTERM must not leave the stack half torn down.
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        done = stack.down()
        if not done.ok:
            log(f"down failed: {done.stderr.strip()[-500:]}")
        left = stack.leftovers()
        if left:
            log(f"WARNING: containers of {PROJECT} still exist: {', '.join(left)}")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
