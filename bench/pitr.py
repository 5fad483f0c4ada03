"""Point-in-time recovery (pgBackRest WAL archiving) against its promises, in one run.

    python -m bench.pitr [--size small|large] [--repeat N] [--keep]

A throwaway stack (compose project rctl-bench-pitr) filled by `pgbench -i`, archiving with
`recoverctl pitr enable` to a folder target, as the e2e tests set it up
(tests/e2e/test_pitr_e2e.py, test_pitr_newmachine_e2e.py). Four measurements:

  idle     the repository folder's growth over an idle window at archive_timeout 30 s,
           extrapolated to an hour (bytes and segments);
  tps      `pgbench -T S -c 2 -j 2` in the db container with archiving on and off
           (`pitr enable --yes` / `pitr disable --yes` between them), interleaved, in
           turns first; target on/off ≥ 0.90 (medians);
  restore  `recoverctl restore --to-time latest --yes` against the same by hand with the
           docker CLI (pgbackrest check; pgbackrest restore into a throwaway volume from a
           one-off container of the db image; postgres on it with archive_mode=off;
           `pg_dump | psql` into a new database of the live cluster; the app stopped, the
           swap by ALTER DATABASE RENAME, the app started and healthy; the old copy and the
           throwaway removed); `--no-safety-backup` beside them for context; interleaved,
           in turns first; target ≤ 1.15x (medians);
  rpo      at archive_timeout 30 s then 10 s: a canary committed right after a WAL switch
           (the worst moment: its segment is switched a whole archive_timeout later), its
           delay until pg_stat_archiver has its segment; then the server dies (its
           containers SIGKILLed, so that no shutdown switch archives the last segment, then
           `docker compose down --volumes`) and `recoverctl recover --target nas --identity
           KEY --to-time latest --yes` on a fresh copy of the project with nothing but the
           settings file and the identity (the env files come back from the target). Two
           trials each: destroyed archive_timeout + 5 s after the commit, and 1 s after the
           canary's segment was archived, with a second canary committed just then, which
           must be lost (its segment was not switched yet: the check can see a loss). Target:
           RPO ≤ archive_timeout + 5 s. After every start of the db (the recovered
           cluster, pitr enable's restart) a probe first: a commit just after a switch,
           before any checkpoint, archived within archive_timeout + 15 s or not. PostgreSQL
           15's checkpointer, started while the startup still runs, computes its first
           sleep without archive_timeout, so the first timed switch can wait until the
           first timed checkpoint (checkpoint_timeout, 5 min), unless something wakes it:
           the db service's healthcheck in recoverctl's override does (a reload, once per
           server start), and the probe, reported on its own line, checks that it did. The
           bench then runs a CHECKPOINT, so that the trials measure archiving as it runs.

pgBackRest's settings are recoverctl's own (core/pitr.py, `environment`), read back from
the db service's env file into the report: `compress-type=lz4` (on 2 cores lz4 costs the live
server a fraction of gz's CPU per 16 MiB segment, and a switched, mostly empty segment still
shrinks to a few KiB), `process-max=1` (archive-push and backups keep to one core: the
other stays the server's), `archive-async` left off (one synchronous archive-push per
segment: a segment is in the repository when PostgreSQL counts it archived, which is what
the RPO rests on), `repo-bundle=y` (small files bundled), `repo-cipher-type=aes-256-cbc`.

Before each restore measurement an untimed `recoverctl pitr backup --type incr` keeps the
WAL to replay the same from round to round (each restore writes a new copy of the database,
which the next one would replay otherwise). After the tps rounds, whose disable/enable
leave the archive with gaps, one `restore --to-time latest` says whether a row committed
after them comes back (reported, not a target), then a full backup starts a clean window.

Writes bench/results/pitr-<size>-<time>.md and .json. A module of its own, with its own
compose project (and `rctl-bench-pitr-byhand` for the by-hand throwaway) and its own lock
(`rctl-bench-pitr.lock` in the temp folder).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.projectcopy import REPO, copy_project

from bench import measure
from bench.common import (
    command_text,
    guarded_run,
    images,
    interrupt_on_sigterm,
    log,
    machine_info,
    machine_lock,
    write_json,
)
from bench.stack import DB_NAME, DB_USER, BenchStack

PROJECT = "rctl-bench-pitr"
BYHAND = f"{PROJECT}-byhand"  # the by-hand restore's throwaway (labels, names)
TARGET = "nas"
STACK = "dev"
SCALES = {"small": 5, "large": 60}
REPEATS = {"small": 5, "large": 5}
TPS_SECONDS = {"small": 15, "large": 30}
IDLE_SECONDS = {"small": 180, "large": 300}
ARCHIVE_TIMEOUTS = (30, 10)
RPO_MARGIN = 5.0  # seconds beyond archive_timeout
RATIO_MIN_RUNS = 5  # ratio lines are judged on medians of at least this many runs
TPS_TARGET = 0.90
RESTORE_TARGET = 1.15
PHASES = ("idle", "tps", "restore", "rpo")
REPO_MOUNT = f"/var/lib/pgbackrest-repos/{TARGET}"
PGDATA = "/var/lib/postgresql/data"
SECRET_WORDS = ("PASS", "KEY", "SECRET", "TOKEN")


class PitrStack(BenchStack):
    """The bench stack, with its own settings file (a folder target and [pitr])."""

    config: Path

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env["RECOVERCTL_CONFIG"] = str(self.config)
        return env

    @property
    def override(self) -> Path:
        return self.root / ".recoverctl" / f"pitr-{self.project}.yml"

    @property
    def pgbackrest_env(self) -> Path:
        return self.root / ".recoverctl" / f"pitr-{self.project}.env"

    @property
    def backend(self) -> str:
        return f"{self.project}-backend-1"

    def healthy_cmd(self) -> str:
        return f"docker exec {self.backend} /opt/venv/bin/python /app/healthcheck.py 2>/dev/null"

    def wait_healthy(self, timeout: float = 180) -> None:
        check = self.healthy_cmd()
        self.shell(
            f"timeout {timeout:.0f} sh -c {shlex.quote(f'until {check}; do sleep 0.2; done')}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.pitr", description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SCALES), default="small")
    p.add_argument("--repeat", type=int, default=None)
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    p.add_argument("--tps-seconds", type=int, default=None, help="each pgbench run's -T")
    p.add_argument("--idle-seconds", type=int, default=None, help="the idle window")
    p.add_argument(
        "--only",
        default=",".join(PHASES),
        help=f"the measurements to run, of {','.join(PHASES)} (for a quick look; setup always)",
    )
    p.add_argument(
        "--archive-timeouts",
        default=",".join(str(t) for t in ARCHIVE_TIMEOUTS),
        help="the RPO trials' archive_timeout values, seconds (the first one also the idle's)",
    )
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    args.scale = args.scale or SCALES[args.size]
    args.repeat = args.repeat or REPEATS[args.size]
    args.tps_seconds = args.tps_seconds or TPS_SECONDS[args.size]
    args.idle_seconds = args.idle_seconds or IDLE_SECONDS[args.size]
    args.only = tuple(x for x in args.only.split(",") if x)
    unknown = set(args.only) - set(PHASES)
    if unknown:
        p.error(f"--only: unknown {', '.join(sorted(unknown))}")
    args.archive_timeouts = tuple(int(t) for t in args.archive_timeouts.split(","))
    return args


def folder_bytes(path: Path) -> tuple[int, int]:
    """Apparent bytes and files under path."""
    total = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += (Path(folder) / name).lstat().st_size
            except FileNotFoundError:
                continue
            files += 1
    return total, files


def settings_text(recipient: str, nas: Path, archive_timeout: int) -> str:
    return (
        f'[encryption]\nrecipients = ["{recipient}"]\n\n'
        f'[targets.{TARGET}]\ntype = "dir"\npath = "{nas}"\n\n'
        f'[pitr]\nrepos = ["{TARGET}"]\narchive_timeout = "{archive_timeout}s"\n'
    )


class Bench:
    def __init__(self, stack: PitrStack, workdir: Path, args: argparse.Namespace):
        self.stack = stack
        self.workdir = workdir
        self.args = args
        self.nas = workdir / "nas"
        self.identity = workdir / "safe" / "identity.txt"
        self.recipient = ""
        self.archive_timeout = args.archive_timeouts[0]
        self.archiving = False
        self.machines = 0
        self.probes = 0
        self.series: dict[str, measure.Series] = {}
        self.meta: dict[str, Any] = {}
        self.meta["steps"] = {}

    def keep_steps(self, key: str, result: dict[str, Any]) -> None:
        """A run's timed steps (its --json `steps`), for the report's steps table."""
        runs = self.meta["steps"].setdefault(key, [])
        runs.append([(str(s["step"]), float(s["seconds"])) for s in result.get("steps") or []])

    # --- helpers ---------------------------------------------------------------------------

    def series_for(self, key: str, label: str, command: str) -> measure.Series:
        if key not in self.series:
            self.series[key] = measure.Series(key, label, command)
        return self.series[key]

    @property
    def repo(self) -> Path:
        return self.nas / PROJECT / STACK / "pgbackrest"

    def sql(self, text: str, database: str = DB_NAME) -> str:
        return self.stack.psql(text, database)

    def pgbackrest(self, *argv: str) -> measure.Run:
        return measure.run(
            ["docker", "exec", "-u", "postgres", self.stack.db, "pgbackrest", "--stanza=vault",
             *argv],
            cwd=self.stack.root,
            what="pgbackrest " + " ".join(argv),
        )  # fmt: skip

    def write_settings(self) -> None:
        self.stack.config.write_text(settings_text(self.recipient, self.nas, self.archive_timeout))

    def set_archiving(self, on: bool) -> None:
        if on == self.archiving:
            return
        st = self.stack
        st.recoverctl("pitr", "enable" if on else "disable", "--yes", "--json")
        st.wait_healthy()
        self.archiving = on
        mode = self.sql("SHOW archive_mode", "postgres")
        assert mode == ("on" if on else "off"), f"archive_mode is {mode} after toggling"

    def ready_segments(self) -> int:
        return int(
            self.sql(
                "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
                "postgres",
            )
        )

    def wait_archived_all(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_segments() > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the archive queue did not drain in {timeout:.0f} s")
            time.sleep(0.5)

    def archiver_state(self) -> str:
        row = self.sql("SELECT * FROM pg_stat_archiver", "postgres")
        shown = self.sql("SELECT current_setting('archive_timeout'), "
                         "pg_walfile_name(pg_current_wal_insert_lsn())", "postgres")  # fmt: skip
        tail = measure.run(["docker", "logs", "--tail", "15", self.stack.db], cwd=self.stack.root,
                           check=False)  # fmt: skip
        return f"pg_stat_archiver {row}; archive_timeout, current {shown}; db's log:\n" + (
            tail.stdout + tail.stderr
        )

    def canary(self, value: str) -> str:
        """Commits a row; returns the WAL segment its commit went into."""
        assert re.fullmatch(r"[a-z0-9+-]+", value), value
        self.sql(f"INSERT INTO canary(v) VALUES ('{value}')")  # noqa: S608 (checked above)
        return self.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())", "postgres")

    def has_canary(self, value: str) -> bool:
        assert re.fullmatch(r"[a-z0-9+-]+", value), value
        return self.sql(f"SELECT count(*) FROM canary WHERE v = '{value}'") == "1"  # noqa: S608

    def pgbackrest_settings(self) -> dict[str, str]:
        lines = self.stack.pgbackrest_env.read_text().splitlines()
        found = dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))
        return {k: v for k, v in found.items() if not any(w in k for w in SECRET_WORDS)}

    # --- setup -----------------------------------------------------------------------------

    def setup(self) -> None:
        st = self.stack
        log(f"pgbench -i -s {self.args.scale}")
        st.docker_exec("pgbench", "-i", "-q", "-s", str(self.args.scale), "-U", DB_USER, DB_NAME)
        self.sql("VACUUM ANALYZE")
        (self.workdir / "safe").mkdir(mode=0o700, exist_ok=True)
        self.nas.mkdir()
        done = st.recoverctl("keys", "new-identity", str(self.identity))
        self.recipient = done.stdout.strip()
        self.write_settings()
        log(f"pitr enable (archive_timeout {self.archive_timeout} s)")
        enabled = st.recoverctl("pitr", "enable", "--yes", "--json")
        result = json.loads(enabled.stdout)["result"]
        self.meta["enable"] = {
            "seconds": round(enabled.seconds, 2),
            "restart_seconds": result.get("restart_seconds"),
            "full_backups": result.get("full_backups"),
        }
        st.wait_healthy()
        self.archiving = True
        self.sql("CREATE TABLE canary (v text PRIMARY KEY, "
                 "at timestamptz NOT NULL DEFAULT clock_timestamp())")  # fmt: skip
        self.meta["pgbackrest"] = {
            "version": self.pgbackrest("version").stdout.strip(),
            "settings": self.pgbackrest_settings(),
        }
        self.meta["postgres"] = self.sql("SHOW server_version", "postgres")
        self.meta["database_bytes"] = int(self.sql(f"SELECT pg_database_size('{DB_NAME}')"))

    # --- 4. the repository's growth while idle -----------------------------------------------

    def idle(self) -> None:
        seconds = self.args.idle_seconds
        self.sql("CHECKPOINT", "postgres")
        self.pgbackrest("check")  # everything so far archived: the window starts clean
        time.sleep(2)
        archived0 = int(self.sql("SELECT archived_count FROM pg_stat_archiver", "postgres"))
        bytes0, files0 = folder_bytes(self.repo)
        log(f"idle window: {seconds} s at archive_timeout {self.archive_timeout} s "
            f"(repository {bytes0 / 1e6:.1f} MB)")  # fmt: skip
        time.sleep(seconds)
        bytes1, files1 = folder_bytes(self.repo)
        archived1 = int(self.sql("SELECT archived_count FROM pg_stat_archiver", "postgres"))
        grown = bytes1 - bytes0
        self.meta["idle"] = {
            "archive_timeout_s": self.archive_timeout,
            "window_s": seconds,
            "repo_bytes_start": bytes0,
            "repo_bytes_end": bytes1,
            "files_added": files1 - files0,
            "segments_archived": archived1 - archived0,
            "bytes_per_hour": round(grown * 3600 / seconds),
            "segments_per_hour": round((archived1 - archived0) * 3600 / seconds, 1),
        }
        log(f"idle: +{grown} bytes, {archived1 - archived0} segment(s) in {seconds} s")

    # --- 2. the cost on the live vault -------------------------------------------------------

    def pgbench(self, on: bool) -> None:
        self.set_archiving(on)
        if on:
            self.wait_archived_all()
        self.sql("CHECKPOINT", "postgres")
        argv = ["pgbench", "-T", str(self.args.tps_seconds), "-c", "2", "-j", "2",
                "-U", DB_USER, DB_NAME]  # fmt: skip
        done = self.stack.docker_exec(*argv, timeout=self.args.tps_seconds + 600)
        found = re.search(r"tps = ([\d.]+) \(without initial", done.stdout)
        if found is None:
            raise RuntimeError(f"no tps in pgbench's output:\n{done.stdout[-1000:]}")
        tps = float(found.group(1))
        which = "on" if on else "off"
        self.series_for(f"tps.{which}", f"pgbench TPS, archiving {which}",
                        " ".join(argv)).add(tps)  # fmt: skip
        if on:
            self.meta.setdefault("tps_queue_after_on", []).append(self.ready_segments())
        log(f"pgbench, archiving {which}: {tps:.0f} TPS")

    def tps_rounds(self) -> None:
        for n in range(1, self.args.repeat + 1):
            log(f"tps round {n} of {self.args.repeat}")
            order = (True, False) if n % 2 else (False, True)
            for on in order:
                self.pgbench(on)
        self.set_archiving(True)

    def gap_check(self) -> None:
        """After the disable/enable rounds: does a row committed now come back with
        restore --to-time latest? (The archive lacks the WAL of every `off` period.)"""
        self.canary("after-toggles")
        done = self.stack.recoverctl(
            "restore", "--to-time", "latest", "--yes", "--no-safety-backup", "--json",
            check=False,
        )  # fmt: skip
        entry: dict[str, Any] = {"seconds": round(done.seconds, 2), "exit": done.returncode}
        if done.ok:
            point = json.loads(done.stdout)["result"].get("point_in_time") or {}
            entry.update(reached=point.get("reached"), base_backup=point.get("base_backup"),
                         kept=self.has_canary("after-toggles"))  # fmt: skip
        else:
            entry["error"] = (done.stdout.strip() or done.stderr.strip())[-800:]
        self.meta["gap_check"] = entry
        log(f"restore --to-time latest after the toggles: {entry}")
        self.stack.wait_healthy()
        log("pitr backup --type full (a clean window for the restore rounds)")
        self.stack.recoverctl("pitr", "backup", "--type", "full", "--json")

    # --- 3. restore --to-time latest against the same by hand ----------------------------------

    def clean_byhand(self) -> None:
        self.stack.shell(
            f"docker rm -f {BYHAND}-restore {BYHAND}-db >/dev/null 2>&1; "
            f"docker volume rm -f {BYHAND}_data >/dev/null 2>&1; true"
        )

    def byhand_cmd(self) -> str:
        st = self.stack
        image = st.images["POSTGRES_IMAGE"]
        label = f"--label com.docker.compose.project={BYHAND}"
        mounts = (
            f"-v {BYHAND}_data:{PGDATA} "
            f"--mount type=bind,source={self.repo},target={REPO_MOUNT},readonly"
        )
        env = f"--env-file {shlex.quote(str(st.pgbackrest_env))}"
        psql_live = f"docker exec {st.db} psql -X -q -v ON_ERROR_STOP=1 -U {DB_USER} -d postgres"
        promoted = (
            f'[ "$(docker exec {BYHAND}-db psql -XAtq -U {DB_USER} -d postgres '
            f"-c 'SELECT pg_is_in_recovery()' 2>/dev/null)\" = f ]"
        )
        healthy = st.healthy_cmd()
        return " && ".join(
            (
                f"docker exec -u postgres {st.db} pgbackrest --stanza=vault check",
                f"docker volume create {label} {BYHAND}_data >/dev/null",
                f"docker run --rm --name {BYHAND}-restore {label} -u postgres --network none "
                f"{env} {mounts} --entrypoint pgbackrest {image} --stanza=vault --repo=1 "
                "--archive-mode=off --type=default restore",
                f"docker run -d --name {BYHAND}-db {label} --network none {env} {mounts} "
                f"{image} postgres -c archive_mode=off -c listen_addresses= >/dev/null",
                f"timeout 600 sh -c {shlex.quote(f'until {promoted}; do sleep 0.2; done')}",
                f"{psql_live} -c 'CREATE DATABASE {DB_NAME}_pitr'",
                f"docker exec {BYHAND}-db pg_dump -U {DB_USER} -d {DB_NAME} "
                f"| docker exec -i {st.db} psql -X -q -v ON_ERROR_STOP=1 -U {DB_USER} "
                f"-d {DB_NAME}_pitr >/dev/null",
                f"{st.compose_prefix()} stop backend 2>/dev/null",
                f"{psql_live} -c 'ALTER DATABASE {DB_NAME} RENAME TO {DB_NAME}_old' "
                f"-c 'ALTER DATABASE {DB_NAME}_pitr RENAME TO {DB_NAME}'",
                f"{st.compose_prefix()} start backend 2>/dev/null",
                f"timeout 120 sh -c {shlex.quote(f'until {healthy}; do sleep 0.1; done')}",
                f"{psql_live} -c 'DROP DATABASE {DB_NAME}_old'",
                f"docker rm -f {BYHAND}-db >/dev/null",
                f"docker volume rm {BYHAND}_data >/dev/null",
            )
        )

    def restore_one(self, which: str, n: int) -> None:
        st = self.stack
        st.recoverctl("pitr", "backup", "--type", "incr")  # the same WAL to replay each time
        value = f"restore-{which}-{n}"
        self.canary(value)
        if which == "byhand":
            self.clean_byhand()
            cmd = self.byhand_cmd()
            done = st.shell(cmd, timeout=1800)
            self.series_for("restore.byhand", "by hand: pgbackrest restore into a throwaway, "
                            "pg_dump \\| psql, swap by RENAME", cmd).add(done.seconds)  # fmt: skip
        else:
            argv = ["restore", "--to-time", "latest", "--yes", "--json"]
            if which == "nosafety":
                argv.insert(-1, "--no-safety-backup")
            done = st.recoverctl(*argv, timeout=1800)
            result = json.loads(done.stdout)["result"]
            key = "restore.recoverctl" + (".nosafety" if which == "nosafety" else "")
            label = "recoverctl restore --to-time latest --yes" + (
                " --no-safety-backup" if which == "nosafety" else ""
            )
            self.series_for(key, label, "recoverctl " + " ".join(argv)).add(done.seconds)
            self.keep_steps(key, result)
            point = result.get("point_in_time") or {}
            if point.get("restore_seconds") is not None:
                self.series_for(f"{key}.copy", f"of which ({which}): the cluster restored and "
                                "promoted in a throwaway (restore_seconds)",
                                "point_in_time.restore_seconds").add(float(point["restore_seconds"]))  # fmt: skip
            if result.get("app_downtime_seconds") is not None:
                self.series_for(f"{key}.downtime", f"of which ({which}): the app down",
                                "app_downtime_seconds").add(float(result["app_downtime_seconds"]))  # fmt: skip
            for p in (st.root / "backups").glob("backup_*"):
                p.unlink()
        if not self.has_canary(value):
            raise RuntimeError(f"{which} restore round {n}: the canary {value} is missing")
        log(f"restore {which} round {n}: {done.seconds:.2f} s")

    def restore_rounds(self) -> None:
        kinds = ["recoverctl", "byhand", "nosafety"]
        for n in range(1, self.args.repeat + 1):
            log(f"restore round {n} of {self.args.repeat}")
            shift = (n - 1) % len(kinds)
            for which in kinds[shift:] + kinds[:shift]:
                self.restore_one(which, n)

    # --- 1. RPO end to end ---------------------------------------------------------------------

    def set_archive_timeout(self, seconds: int) -> None:
        if seconds == self.archive_timeout:
            return
        self.archive_timeout = seconds
        self.write_settings()
        log(f"pitr enable (archive_timeout {seconds} s)")
        self.stack.recoverctl("pitr", "enable", "--yes", "--json")
        self.stack.wait_healthy()
        self.after_start("pitr enable (db restarted)")

    def archived_after(self, segment: str, since: float, until: float) -> float | None:
        """Seconds from since until pg_stat_archiver has segment, polled until `until`."""
        while time.monotonic() < until:
            last = self.sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
                            "postgres")  # fmt: skip
            if last >= segment:
                return time.monotonic() - since
            time.sleep(0.2)
        return None

    def destroy(self) -> float:
        """The server dies: its containers SIGKILLed (no shutdown, whose WAL switch would
        archive the last segment), then compose's down --volumes. Returns the kill's end."""
        st = self.stack
        names = st.leftovers()
        measure.run(["docker", "kill", "--signal", "KILL", *names], cwd=st.root)
        killed = time.monotonic()
        st.shell(f"{st.compose_prefix()} -f {shlex.quote(str(st.override))} down --volumes "
                 "--remove-orphans -t 0")  # fmt: skip
        volumes = measure.run(
            ["docker", "volume", "ls", "-q", "--filter",
             f"label=com.docker.compose.project={st.project}"],
            cwd=st.root,
        ).stdout.split()  # fmt: skip
        if st.leftovers() or volumes:
            raise RuntimeError(f"the server is not gone: {st.leftovers() + volumes}")
        return killed

    def new_machine(self) -> measure.Run:
        """A fresh copy of the project, the settings file and the identity only: recover."""
        self.machines += 1
        root = self.workdir / f"machine{self.machines}"
        copy_project(root)
        old = self.stack.root
        stack = PitrStack(root, PROJECT, self.stack.images)
        stack.config = self.stack.config
        self.stack = stack
        shutil.rmtree(old, ignore_errors=True)
        assert not (root / ".env").exists()
        done = stack.recoverctl(
            "recover", "--target", TARGET, "--identity", str(self.identity),
            "--to-time", "latest", "--yes", "--json", timeout=1800,
        )  # fmt: skip
        stack.wait_healthy()
        self.archiving = True
        self.after_start("recover")
        return done

    def after_start(self, what: str) -> None:
        """Right after the db started: is a commit archived within archive_timeout? (PG 15's
        checkpointer computes its first sleep while the startup still runs, without
        archive_timeout: the first timed switch may wait for checkpoint_timeout.) Then a
        CHECKPOINT, which wakes it, so that the trials measure archiving as it runs later."""
        t = self.archive_timeout
        self.sql("SELECT pg_switch_wal()", "postgres")
        self.probes += 1
        segment = self.canary(f"after-start-{self.probes}")
        committed = time.monotonic()
        limit = t + 15.0
        delay = self.archived_after(segment, committed, committed + limit)
        entry = {"after": what, "archive_timeout_s": t, "limit_s": limit,
                 "archived_after_s": None if delay is None else round(delay, 2)}  # fmt: skip
        self.meta.setdefault("after_start", []).append(entry)
        log(f"right after {what}: {entry}")
        self.sql("CHECKPOINT", "postgres")

    def rpo_trial(self, trial: str) -> None:
        t = self.archive_timeout
        self.pgbackrest("check")  # nothing waits
        # Just after a switch: the canary's segment is switched a whole archive_timeout later.
        self.sql("SELECT pg_switch_wal()", "postgres")
        value = f"rpo-{t}-{trial}"
        segment = self.canary(value)
        committed = time.monotonic()
        second: str | None = None
        if trial == "timeout+5":
            deadline = committed + t + RPO_MARGIN
            delay = self.archived_after(segment, committed, deadline)
            time.sleep(max(0.0, deadline - time.monotonic()))
        else:
            delay = self.archived_after(segment, committed, committed + t + 120)
            if delay is None:
                raise RuntimeError(
                    f"{segment} was not archived within {t + 120} s: {self.archiver_state()}"
                )
            second = f"{value}-unarchived"
            self.canary(second)
            time.sleep(1.0)
        killed = self.destroy()
        gap = killed - committed
        log(f"rpo {trial} at archive_timeout {t} s: archived after "
            f"{'never' if delay is None else f'{delay:.1f} s'}, destroyed after {gap:.1f} s")  # fmt: skip
        done = self.new_machine()
        result = json.loads(done.stdout)["result"]
        entry: dict[str, Any] = {
            "archive_timeout_s": t,
            "trial": trial,
            "archived_after_s": None if delay is None else round(delay, 2),
            "destroyed_after_s": round(gap, 2),
            "kept": self.has_canary(value),
            "recover_seconds": round(done.seconds, 2),
            "serving_seconds": result.get("serving_seconds"),
        }
        if second is not None:
            entry["unarchived_kept"] = self.has_canary(second)
        self.meta.setdefault("rpo", []).append(entry)
        if delay is not None:
            self.series_for(f"rpo.delay.{t}", f"commit to archived, archive_timeout {t} s "
                            "(committed just after a switch)",
                            "pg_stat_archiver.last_archived_wal ≥ the commit's segment").add(delay)  # fmt: skip
        self.series_for("recover", "recoverctl recover --to-time latest on a new machine "
                        "(env pull, cluster restore, up)",
                        "recoverctl recover --target nas --identity KEY --to-time latest --yes",
                        ).add(done.seconds)  # fmt: skip
        self.keep_steps("recover", result)
        log(f"recovered in {done.seconds:.1f} s: {entry}")

    def rpo(self) -> None:
        for t in self.args.archive_timeouts:
            self.set_archive_timeout(t)
            shown = self.sql("SHOW archive_timeout", "postgres")
            self.meta.setdefault("archive_timeout_shown", []).append(shown)
            for trial in ("timeout+5", "archived+1"):
                self.rpo_trial(trial)

    def run(self) -> None:
        self.setup()
        only = self.args.only
        if "idle" in only:
            self.idle()
        if "tps" in only:
            self.tps_rounds()
            self.gap_check()
        if "restore" in only:
            self.restore_rounds()
        if "rpo" in only:
            self.rpo()


def _ratio_line(what: str, ours: measure.Series | None, theirs: measure.Series | None,
                target: float, higher: bool, unit: str) -> str:  # fmt: skip
    if ours is None or theirs is None or not ours.samples or not theirs.samples:
        return f"{what}: not measured"
    ratio = ours.median / theirs.median
    n = min(len(ours.samples), len(theirs.samples))
    if n < RATIO_MIN_RUNS:
        verdict = f"n/a (only {n} runs)"
    else:
        verdict = "pass" if (ratio >= target if higher else ratio <= target) else "MISS"
    sign = "≥" if higher else "≤"
    return (
        f"{what}: {ours.median:.2f} {unit} vs {theirs.median:.2f} {unit} = {ratio:.2f}x "
        f"({sign} {target:.2f}x, medians of {n}; minima {ours.min:.2f} vs {theirs.min:.2f}): "
        f"{verdict}"
    )


def verdicts(series: dict[str, measure.Series], meta: dict[str, Any]) -> list[str]:
    lines = []
    for t in meta.get("archive_timeouts", ARCHIVE_TIMEOUTS):
        trials = [r for r in meta.get("rpo", []) if r["archive_timeout_s"] == t]
        if not trials:
            lines.append(f"RPO at archive_timeout {t} s: not measured")
            continue
        delays = [r["archived_after_s"] for r in trials if r["archived_after_s"] is not None]
        worst = max(delays) if delays else None
        kept = all(r["kept"] for r in trials)
        bound = t + RPO_MARGIN
        ok = kept and worst is not None and worst <= bound
        said = "; ".join(
            f"destroyed {r['destroyed_after_s']:.1f} s after the commit "
            f"({r['trial']}): {'kept' if r['kept'] else 'LOST'}"
            + (
                f", a row committed 1 s before the end: "
                f"{'kept' if r['unarchived_kept'] else 'lost, as expected'}"
                if "unarchived_kept" in r
                else ""
            )
            for r in trials
        )
        lines.append(
            f"RPO at archive_timeout {t} s: worst commit-to-archived "
            f"{'never' if worst is None else f'{worst:.1f} s'} (≤ {bound:.0f} s); {said}: "
            + ("pass" if ok else "MISS")
        )
    probes = meta.get("after_start", [])
    if probes:
        late = [p for p in probes if p["archived_after_s"] is None
                or p["archived_after_s"] > p["archive_timeout_s"] + RPO_MARGIN]  # fmt: skip
        said = "; ".join(
            f"after {p['after']} at {p['archive_timeout_s']} s: "
            + (
                "not archived within " + f"{p['limit_s']:.0f} s"
                if p["archived_after_s"] is None
                else f"archived after {p['archived_after_s']:.1f} s"
            )
            for p in probes
        )
        lines.append(
            "RPO right after the db starts (a commit just after a switch, before any "
            f"checkpoint): {said}: " + ("MISS" if late else "pass")
        )
    lines.append(_ratio_line("pgbench TPS, archiving on / off", series.get("tps.on"),
                             series.get("tps.off"), TPS_TARGET, True, "TPS"))  # fmt: skip
    lines.append(_ratio_line("restore --to-time latest --yes / by hand",
                             series.get("restore.recoverctl"), series.get("restore.byhand"),
                             RESTORE_TARGET, False, "s"))  # fmt: skip
    nosafety = _ratio_line("info: restore --to-time latest --yes --no-safety-backup / by hand",
                           series.get("restore.recoverctl.nosafety"),
                           series.get("restore.byhand"), RESTORE_TARGET, False, "s")  # fmt: skip
    lines.append(nosafety.rsplit(": ", 1)[0])
    idle = meta.get("idle")
    if idle:
        lines.append(
            f"info: repository growth idle at archive_timeout {idle['archive_timeout_s']} s: "
            f"{idle['bytes_per_hour'] / 1e6:.2f} MB per hour ({idle['segments_per_hour']} "
            f"segments per hour; {idle['repo_bytes_end'] - idle['repo_bytes_start']} bytes, "
            f"{idle['segments_archived']} segments in {idle['window_s']} s)"
        )
    gap = meta.get("gap_check")
    if gap:
        if "kept" in gap:
            what = "kept" if gap["kept"] else "LOST (the archive's gaps stop the replay)"
        else:
            what = f"failed (exit {gap['exit']})"
        lines.append(
            "info: after the tps rounds' disable/enable (enable takes a full when WAL is missing), a row "
            f"committed then and restore --to-time latest: {what}"
        )
    return lines


def write(results: Path, stem: str, meta: dict[str, Any], series: dict[str, measure.Series],
          lines: list[str]) -> Path:  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    rows = ["| measurement | median | min | max | runs |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in series.values():
        unit = "TPS" if s.key.startswith("tps.") else "s"
        rows.append(f"| {s.label} | {s.median:.2f} {unit} | {s.min:.2f} | {max(s.samples):.2f} "
                    f"| {len(s.samples)} |")  # fmt: skip
    rpo = ["| archive_timeout | trial | archived after | destroyed after | row | row 1 s "
           "before the end | recover |", "| ---: | --- | ---: | ---: | --- | --- | ---: |"]  # fmt: skip
    for r in meta.get("rpo", []):
        late = r.get("unarchived_kept")
        delay = r["archived_after_s"]
        rpo.append(
            f"| {r['archive_timeout_s']} s | {r['trial']} | "
            f"{'never' if delay is None else f'{delay:.1f} s'} | "
            f"{r['destroyed_after_s']:.1f} s | {'kept' if r['kept'] else 'LOST'} | "
            f"{'' if late is None else ('kept' if late else 'lost')} | "
            f"{r['recover_seconds']:.1f} s |"
        )
    settings = meta.get("pgbackrest", {}).get("settings", {})
    shown = ", ".join(f"{k}={settings[k]}" for k in sorted(settings)
                      if k.endswith(("COMPRESS_TYPE", "PROCESS_MAX", "BUNDLE", "CIPHER_TYPE",
                                     "ARCHIVE_ASYNC", "COMPRESS_LEVEL")))  # fmt: skip
    md = results / f"{stem}.md"
    md.write_text(
        f"# pitr bench ({meta['size']}, scale {meta['scale']}, {meta['repeat']} rounds)\n\n"
        f"Started {meta['started_at']} UTC; PostgreSQL {meta.get('postgres', '?')}, "
        f"{meta.get('pgbackrest', {}).get('version', 'pgBackRest ?')} ({shown}); "
        f"database {meta.get('database_bytes', 0) / 1e6:.0f} MB; pgbench -T "
        f"{meta['tps_seconds']} -c 2 -j 2; recoverctl at {meta.get('source', '?')}; load "
        f"average {meta.get('machine', {}).get('loadavg_at_start')} at the start, "
        f"{meta.get('loadavg_at_end')} at the end.\n\n"
        + "\n".join(rows)
        + "\n\n"
        + ("\n".join(rpo) + "\n\n" if meta.get("rpo") else "")
        + "".join("\n".join(t) + "\n\n" for t in _steps_tables(meta.get("steps", {})))
        + "\n".join(f"- {line}" for line in lines)
        + "\n"
    )
    write_json(results / f"{stem}.json", meta, series, lines)
    return md


def _steps_tables(steps: dict[str, list[list[tuple[str, float]]]]) -> list[list[str]]:
    """Per command, each step's median over the runs; digits in a step's name (file and
    backup names) are folded so that the same step of every run lines up."""
    tables = []
    for key, runs in steps.items():
        times: dict[str, list[float]] = {}
        for run in runs:
            for name, seconds in run:
                times.setdefault(re.sub(r"\d+", "#", name), []).append(seconds)
        if not times:
            continue
        rows = [f"| steps of {key} ({len(runs)} runs) | median | min | max | runs |",
                "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for name, values in times.items():
            rows.append(f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} | "
                        f"{max(values):.2f} | {len(values)} |")  # fmt: skip
        tables.append(rows)
    return tables


def _teardown(bench: Bench, workdir: Path, keep: bool, say: Callable[[str], None]) -> None:
    stack = bench.stack
    if keep:
        say(f"--keep: the stack is still up. Tear it down with: cd {stack.root} && "
            f"RECOVERCTL_CONFIG={stack.config} RECOVERCTL_PROJECT_NAME={PROJECT} "
            "recoverctl down --volumes --yes")  # fmt: skip
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        bench.clean_byhand()
        if stack.root.is_dir():
            stack.recoverctl("down", "--volumes", "--yes", "--no-safety-backup", check=False,
                             timeout=600)  # fmt: skip
        left = stack.leftovers()
        if left:
            measure.run(["docker", "rm", "-f", "-v", *left], cwd=workdir, check=False)
        measure.run(
            ["sh", "-c", "docker volume ls -q --filter label=com.docker.compose.project="
             f"{PROJECT} | xargs -r docker volume rm -f"],
            cwd=workdir, check=False,
        )  # fmt: skip
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    imgs = images()
    _lock = machine_lock(PROJECT, log, what="pitr bench")  # held until the process ends
    workdir = Path(tempfile.mkdtemp(prefix="rctl-bench-pitr-"))
    started = datetime.now(UTC)
    stack = PitrStack.create(workdir / "machine0", PROJECT, imgs)
    assert isinstance(stack, PitrStack)
    stack.config = workdir / "config.toml"
    stack.config.write_text("")
    bench = Bench(stack, workdir, args)
    bench.meta.update(
        size=args.size, scale=args.scale, repeat=args.repeat, tps_seconds=args.tps_seconds,
        idle_seconds=args.idle_seconds, archive_timeouts=list(args.archive_timeouts),
        started_at=f"{started:%Y-%m-%d %H:%M:%S}", images=imgs, project=PROJECT,
        machine=machine_info(PROJECT),
        source=command_text(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
        recoverctl=stack.recoverctl_bin,
    )  # fmt: skip
    failed: BaseException | None = None
    t0 = time.monotonic()
    try:
        failed = guarded_run(stack, PROJECT, workdir, bench.run, log)
    finally:
        bench.meta["run_seconds"] = round(time.monotonic() - t0)
        _teardown(bench, workdir, args.keep, log)
    bench.meta["finished_at"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    bench.meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if failed is not None:
        bench.meta["failed"] = f"{type(failed).__name__}: {failed}"
    if not bench.series and "idle" not in bench.meta:
        return 1
    lines = verdicts(bench.series, bench.meta)
    if failed is not None:
        lines.append(f"failed: {type(failed).__name__}: {str(failed)[:1500]}")
    stem = f"pitr-{args.size}-{started:%Y%m%d-%H%M%S}" + ("-failed" if failed else "")
    md = write(args.results, stem, bench.meta, bench.series, lines)
    print(md.read_text())
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
