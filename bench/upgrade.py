"""upgrade-postgres (15 to 17) against the same upgrade done by hand, in one run.

A throwaway stack (compose project rctl-bench-upgrade) on PostgreSQL 15, filled by
`pgbench -i`. Rounds interleaved, each starting from the same 15 cluster:

  recoverctl  `recoverctl upgrade-postgres --to 17 --yes --json`: the whole, the app's
              downtime (its `app_downtime_seconds`), and step 2 (the backup and its deep
              verification, from its steps) reported apart; then, untimed, `--rollback`
              and `--forget-old` bring the 15 cluster back.
  by hand     what a careful admin types: the backend stopped, the 17 image started on a
              new volume of the project, `pg_dumpall --roles-only | psql` and
              `pg_dump --create | psql` with 17's tools from the 15 server, the env file
              switched (POSTGRES_IMAGE, POSTGRES_VOLUME), `docker compose up -d`, until the
              backend's healthcheck passes; its downtime is its whole (the first step stops
              the app); then, untimed, the env file back and the new volume removed.

Targets (the issue's): the whole less step 2 ≤ 1.15x by hand; the downtime ≤ 1.20x the by-hand
downtime; medians of at least 5 rounds, else n/a.

    POSTGRES_IMAGE=recoverctl-test/postgres:15 POSTGRES17_IMAGE=recoverctl-test/postgres:17 \\
    PYTHON_IMAGE=recoverctl-test/python:3.11 .venv/bin/python -m bench.upgrade [--size small|large]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.projectcopy import REPO

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

PROJECT = "rctl-bench-upgrade"
SCALES = {"small": 5, "large": 60}
REPEATS = {"small": 5, "large": 5}
MIN_RUNS = 5
WHOLE_TARGET = 1.15
DOWNTIME_TARGET = 1.20
PGDATA = "/var/lib/postgresql/data"
NEW_VOLUME = "db-data-17"
BYHAND_DB = f"{PROJECT}-byhand-db"


class UpgradeStack(BenchStack):
    """The env file names the image: POSTGRES_IMAGE exported here would win over it."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.pop("POSTGRES_IMAGE", None)
        env.pop("POSTGRES_VOLUME", None)
        return env

    @property
    def backend(self) -> str:
        return f"{self.project}-backend-1"

    def set_env(self, **values: str | None) -> None:
        path = self.root / ".env"
        lines = [
            line for line in path.read_text().splitlines()
            if line.split("=", 1)[0] not in values
        ]  # fmt: skip
        lines += [f"{k}={v}" for k, v in values.items() if v is not None]
        path.write_text("\n".join(lines) + "\n")


class Bench:
    def __init__(self, stack: UpgradeStack, args: argparse.Namespace, new_image: str):
        self.stack = stack
        self.args = args
        self.new_image = new_image
        self.series: dict[str, measure.Series] = {}
        self.meta: dict[str, Any] = {"steps": []}

    def series_for(self, key: str, label: str, command: str) -> measure.Series:
        if key not in self.series:
            self.series[key] = measure.Series(key, label, command)
        return self.series[key]

    def major(self) -> int:
        self.stack._db = None
        return int(self.stack.psql("SHOW server_version_num")) // 10000

    def setup(self) -> None:
        st = self.stack
        log(f"pgbench -i -s {self.args.scale}")
        st.docker_exec("pgbench", "-i", "-q", "-s", str(self.args.scale), "-U", DB_USER, DB_NAME)
        st.psql("VACUUM ANALYZE", DB_NAME)
        self.meta["database_bytes"] = int(
            st.psql(f"SELECT pg_database_size('{DB_NAME}')", DB_NAME)
        )
        self.meta["postgres_from"] = st.psql("SHOW server_version")
        self.checksum = self.content()

    def content(self) -> str:
        return self.stack.psql(
            "SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts", DB_NAME
        )

    def settle(self) -> None:
        st = self.stack
        st.psql("CHECKPOINT")
        st.shell(
            f"timeout 120 sh -c {shlex.quote(self.no_autovacuum())} || true", check=False
        )

    def no_autovacuum(self) -> str:
        query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'"
        probe = f"docker exec {self.stack.db} psql -XAtq -U {DB_USER} -d postgres -c \"{query}\""
        return f'until [ "$({probe})" = 0 ]; do sleep 0.5; done'

    # --- recoverctl ------------------------------------------------------------------------

    def recoverctl_round(self, n: int) -> None:
        st = self.stack
        self.settle()
        done = st.recoverctl("upgrade-postgres", "--to", "17", "--yes", "--json", timeout=3600)
        result = json.loads(done.stdout)["result"]
        if self.major() != 17 or self.content() != self.checksum:
            raise RuntimeError(f"recoverctl round {n}: not on 17 with the same data")
        steps = [(str(s["step"]), float(s["seconds"])) for s in result["steps"]]
        self.meta["steps"].append(steps)
        step2 = sum(t for name, t in steps if name.startswith(("backing up", "verifying")))
        self.series_for("whole", "recoverctl upgrade-postgres --to 17 --yes",
                        "recoverctl upgrade-postgres --to 17 --yes --json").add(done.seconds)  # fmt: skip
        self.series_for("step2", "of which: step 2, the backup and its deep verification",
                        "steps: backing up, verifying").add(step2)  # fmt: skip
        self.series_for("less_step2", "recoverctl, the whole less step 2",
                        "whole - step 2").add(done.seconds - step2)  # fmt: skip
        self.series_for("downtime", "recoverctl: the app down",
                        "app_downtime_seconds").add(float(result["app_downtime_seconds"]))  # fmt: skip
        log(f"recoverctl round {n}: {done.seconds:.1f} s, step 2 {step2:.1f} s, "
            f"downtime {result['app_downtime_seconds']:.1f} s")  # fmt: skip
        st.recoverctl("upgrade-postgres", "--rollback", "--yes", "--json", timeout=3600)
        st.recoverctl("upgrade-postgres", "--forget-old", "--yes", "--json", timeout=600)
        shutil.rmtree(st.root / "backups", ignore_errors=True)
        if self.major() != 15:
            raise RuntimeError(f"recoverctl round {n}: the rollback left {self.major()}")

    # --- by hand ---------------------------------------------------------------------------

    def byhand_cmd(self) -> str:
        st = self.stack
        volume = f"{PROJECT}_{NEW_VOLUME}"
        labels = (
            f"--label com.docker.compose.project={PROJECT} "
            f"--label com.docker.compose.volume={NEW_VOLUME}"
        )
        network = f"{PROJECT}_default"
        # The password from the env file, in the container's environment: never in an argv.
        new = f"docker exec {BYHAND_DB} sh -c 'PGPASSWORD=$POSTGRES_PASSWORD; export PGPASSWORD; "
        ready = f"docker exec {BYHAND_DB} pg_isready -q -h 127.0.0.1 -U {DB_USER}"
        healthy = f"docker exec {st.backend} /opt/venv/bin/python /app/healthcheck.py 2>/dev/null"
        env_file = shlex.quote(str(st.root / ".env"))
        return " && ".join(
            (
                f"{st.compose_prefix()} stop backend 2>/dev/null",
                f"docker volume create {labels} {volume} >/dev/null",
                f"docker run -d --name {BYHAND_DB} --network {network} --env-file {env_file} "
                f"-e POSTGRES_DB=postgres -v {volume}:{PGDATA} {self.new_image} >/dev/null",
                f"timeout 300 sh -c {shlex.quote(f'until {ready}; do sleep 0.2; done')}",
                f"{new}pg_dumpall -h db -U {DB_USER} --roles-only | grep -vxF \"CREATE ROLE "
                f"{DB_USER};\" | psql -X -q -v ON_ERROR_STOP=1 -U {DB_USER} -d postgres' >/dev/null",
                f"{new}pg_dump -h db -U {DB_USER} --create {DB_NAME} | psql -X -q -v "
                f"ON_ERROR_STOP=1 -U {DB_USER} -d postgres' >/dev/null",
                f"docker exec {BYHAND_DB} psql -X -q -U {DB_USER} -d {DB_NAME} -c ANALYZE",
                f"docker rm -f {BYHAND_DB} >/dev/null",
                f"sed -i -e '/^POSTGRES_IMAGE=/d' -e '/^POSTGRES_VOLUME=/d' {env_file}",
                f"printf 'POSTGRES_IMAGE=%s\\nPOSTGRES_VOLUME=%s\\n' {self.new_image} {NEW_VOLUME} >> {env_file}",
                f"{st.compose_prefix()} up -d 2>/dev/null",
                f"timeout 300 sh -c {shlex.quote(f'until {healthy}; do sleep 0.1; done')}",
            )
        )

    def byhand_round(self, n: int) -> None:
        st = self.stack
        self.settle()
        cmd = self.byhand_cmd()
        done = st.shell(cmd, timeout=3600)
        if self.major() != 17 or self.content() != self.checksum:
            raise RuntimeError(f"by-hand round {n}: not on 17 with the same data")
        self.series_for("byhand", "by hand: 17's pg_dump | psql into a new 17 cluster, "
                        "env switched, compose up", cmd).add(done.seconds)  # fmt: skip
        log(f"by hand round {n}: {done.seconds:.1f} s")
        self.byhand_back()

    def byhand_back(self) -> None:
        st = self.stack
        st.set_env(POSTGRES_IMAGE=st.images["POSTGRES_IMAGE"], POSTGRES_VOLUME=None)
        st.shell(f"docker rm -f {BYHAND_DB} >/dev/null 2>&1; {st.compose_prefix()} up -d "
                 "2>/dev/null", timeout=600)  # fmt: skip
        st.shell(f"docker volume rm -f {PROJECT}_{NEW_VOLUME} >/dev/null")
        st.recoverctl("ps")
        st.shell(
            "timeout 300 sh -c "
            + shlex.quote(
                f"until docker exec {st.backend} /opt/venv/bin/python /app/healthcheck.py "
                "2>/dev/null; do sleep 0.2; done"
            )
        )
        if self.major() != 15:
            raise RuntimeError("the by-hand round's reset left another major")

    def run(self) -> None:
        self.setup()
        for n in range(1, self.args.repeat + 1):
            log(f"round {n} of {self.args.repeat}")
            # In turns first: noise that drifts over the run weighs on both alike.
            order = (self.recoverctl_round, self.byhand_round)
            for fn in order if n % 2 else reversed(order):
                fn(n)


def _ratio(name: str, a: measure.Series | None, b: measure.Series | None, target: float) -> str:
    if a is None or b is None or not a.samples or not b.samples:
        return f"{name}: not measured"
    ratio = a.median / b.median
    runs = min(len(a.samples), len(b.samples))
    verdict = ("pass" if ratio <= target else "MISS") if runs >= MIN_RUNS else f"n/a (only {runs} runs)"
    return (f"{name}: {a.median:.2f} s vs {b.median:.2f} s = {ratio:.2f}x (≤ {target:.2f}x, "
            f"medians of {runs}; minima {a.min:.2f} vs {b.min:.2f}): {verdict}")  # fmt: skip


def _byhand_downtime(series: dict[str, measure.Series]) -> measure.Series | None:
    # By hand, the app is down from its first step (stop backend) to its last (healthy).
    byhand = series.get("byhand")
    if byhand is None:
        return None
    down = measure.Series("byhand.downtime", "by hand: the app down (its whole)", byhand.command)
    for s in byhand.samples:
        down.add(s)
    return down


def report(results: Path, stem: str, meta: dict[str, Any], series: dict[str, measure.Series]) -> Path:
    lines = [
        _ratio("the whole less step 2 / by hand", series.get("less_step2"), series.get("byhand"),
               WHOLE_TARGET),
        _ratio("the app's downtime / by hand", series.get("downtime"), _byhand_downtime(series),
               DOWNTIME_TARGET),
    ]  # fmt: skip
    rows = ["| measurement | median | min | max | runs |", "| --- | ---: | ---: | ---: | ---: |"]
    for s in series.values():
        rows.append(f"| {s.label} | {s.median:.2f} s | {s.min:.2f} | {max(s.samples):.2f} | "
                    f"{len(s.samples)} |")  # fmt: skip
    times: dict[str, list[float]] = {}
    for run in meta.get("steps", []):
        for name, seconds in run:
            times.setdefault(re.sub(r"\d{6,}|_\d{4}-\d\d-\d\d_\d+", "#", name), []).append(seconds)
    steps = ["| step of upgrade-postgres | median | min | max |", "| --- | ---: | ---: | ---: |"]
    for name, values in times.items():
        steps.append(f"| {name} | {statistics.median(values):.2f} s | {min(values):.2f} | "
                     f"{max(values):.2f} |")  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    md = results / f"{stem}.md"
    md.write_text(
        f"# upgrade bench ({meta['size']}, scale {meta['scale']}, {meta['repeat']} rounds)\n\n"
        f"Started {meta['started_at']} UTC; PostgreSQL {meta.get('postgres_from', '?')} to "
        f"{meta.get('new_image')}; database {meta.get('database_bytes', 0) / 1e6:.0f} MB; "
        f"recoverctl at {meta.get('source', '?')}; {meta['machine']['summary']}; load average "
        f"{meta['machine'].get('loadavg_at_start')} at the start, {meta.get('loadavg_at_end')} "
        "at the end.\n\n" + "\n".join(rows) + "\n\n" + "\n".join(steps) + "\n\n"
        + "\n".join(f"- {line}" for line in lines) + "\n"
    )
    write_json(results / f"{stem}.json", meta, series, lines)
    return md


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.upgrade", description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SCALES), default="small")
    p.add_argument("--repeat", type=int, default=None)
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    args.scale = args.scale or SCALES[args.size]
    args.repeat = args.repeat or REPEATS[args.size]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    interrupt_on_sigterm()
    imgs = images()
    new_image = os.environ.get("POSTGRES17_IMAGE") or "recoverctl-test/postgres:17"
    _lock = machine_lock(PROJECT, log, what="upgrade bench")
    workdir = Path(tempfile.mkdtemp(prefix="rctl-bench-upgrade-"))
    started = datetime.now(UTC)
    stack = UpgradeStack.create(workdir / "project", PROJECT, imgs)
    assert isinstance(stack, UpgradeStack)
    bench = Bench(stack, args, new_image)
    bench.meta.update(
        size=args.size, scale=args.scale, repeat=args.repeat, images=imgs, new_image=new_image,
        started_at=f"{started:%Y-%m-%d %H:%M:%S}", project=PROJECT, machine=machine_info(PROJECT),
        source=command_text(["git", "-C", str(REPO), "describe", "--always", "--dirty"]),
    )  # fmt: skip
    t0 = time.monotonic()
    try:
        failed = guarded_run(stack, PROJECT, workdir, bench.run, log)
    finally:
        bench.meta["run_seconds"] = round(time.monotonic() - t0)
        measure.run(["docker", "rm", "-f", BYHAND_DB], cwd=workdir, check=False)
        stack.recoverctl("down", "--volumes", "--yes", "--no-safety-backup", check=False,
                         timeout=600)  # fmt: skip
        measure.run(
            ["sh", "-c", "docker volume ls -q --filter label=com.docker.compose.project="
             f"{PROJECT} | xargs -r docker volume rm -f"], cwd=workdir, check=False,
        )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)
    bench.meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if failed is not None:
        bench.meta["failed"] = f"{type(failed).__name__}: {failed}"
    stem = f"upgrade-{args.size}-{started:%Y%m%d-%H%M%S}"
    md = report(args.results, stem, bench.meta, bench.series)
    log(f"report: {md}")
    print(md.read_text())
    return 1 if failed is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
