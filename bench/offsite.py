"""Off-site copies against the careful admin's pipeline (issue 12), side by side in one run.

    python -m bench.offsite [--size small|large] [--repeat N] [--keep]

A throwaway stack (compose project rctl-bench-offsite) filled by `pgbench -i`, and moto's
S3 server on loopback (the e2e tests' own, tests/e2e/servers.py). Interleaved round by
round, so that noise on the machine spreads over every measurement alike:

  push  `recoverctl backup` with one S3 target (the dump, its checks, sealed with age and
        uploaded while it streams), against `docker exec DB pg_dump -Fc | age -r R |
        aws s3 cp - s3://…` (pipefail);
  pull  `recoverctl pull latest --target offsite` (download, sha256 as it streams,
        decrypt to a partial file, manifest checks), against `aws s3 cp s3://… FILE &&
        age -d -i KEY -o OUT FILE`.

Targets: each ≤ 1.20x its pipeline (medians), recoverctl's peak RSS < 80 MiB. Writes
bench/results/offsite-<size>-<time>.md and .json. A separate module from `python -m bench`
(issue 5's), with its own compose project and lock: the two never share a stack.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.e2e.servers import AWS_ENV, S3Server

from bench import measure
from bench.common import images, interrupt_on_sigterm, log, write_json
from bench.stack import DB_NAME, DB_USER, BenchStack

PROJECT = "rctl-bench-offsite"
BUCKET = "rctl-bench-offsite"
SCALES = {"small": 5, "large": 60}
REPEATS = {"small": 5, "large": 5}
RATIO_TARGET = 1.20
RSS_TARGET_MIB = 80


class OffsiteStack(BenchStack):
    """The bench stack, with its own settings file (the S3 target) and moto's credentials."""

    config: Path

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(AWS_ENV)
        env["RECOVERCTL_CONFIG"] = str(self.config)
        return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.offsite", description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SCALES), default="small")
    p.add_argument("--repeat", type=int, default=None)
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    p.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    args.scale = args.scale or SCALES[args.size]
    args.repeat = args.repeat or REPEATS[args.size]
    return args


class Bench:
    def __init__(self, stack: OffsiteStack, s3: S3Server, workdir: Path, args: argparse.Namespace):
        self.stack = stack
        self.s3 = s3
        self.workdir = workdir
        self.args = args
        self.identity = workdir / "safe" / "identity.txt"
        self.recipient = ""
        self.series: dict[str, measure.Series] = {}
        self.meta: dict[str, Any] = {}

    def series_for(self, key: str, label: str, command: str, rss: bool = False) -> measure.Series:
        if key not in self.series:
            self.series[key] = measure.Series(key, label, command, track_rss=rss)
        return self.series[key]

    def setup(self) -> None:
        st = self.stack
        log(f"pgbench -i -s {self.args.scale}")
        st.docker_exec("pgbench", "-i", "-q", "-s", str(self.args.scale), "-U", DB_USER, DB_NAME)
        (self.workdir / "safe").mkdir(mode=0o700, exist_ok=True)
        # Written by recoverctl itself, outside the project, as the playbook says.
        done = st.recoverctl("keys", "new-identity", str(self.identity))
        self.recipient = done.stdout.strip()
        self.s3.client().create_bucket(Bucket=BUCKET)
        st.config.write_text(
            f'[encryption]\nrecipients = ["{self.recipient}"]\n\n'
            f'[targets.offsite]\ntype = "s3"\nbucket = "{BUCKET}"\nprefix = "recoverctl/"\n'
            f'endpoint_url = "{self.s3.endpoint}"\nregion = "us-east-1"\n'
        )
        log("warm-up backup and push")
        st.recoverctl("backup")

    def _clear_backups(self) -> None:
        # Each round's backup is new: keep the folder from growing over the rounds.
        folder = self.stack.root / "backups"
        for p in folder.glob("backup_*"):
            p.unlink()

    def round(self, n: int) -> None:
        st = self.stack
        db = st.db
        aws = f"aws --endpoint-url {shlex.quote(self.s3.endpoint)}"
        admin_key = f"s3://{BUCKET}/admin/round{n}.dump.age"
        admin_cmd = (
            f"docker exec {db} pg_dump -Fc -U {DB_USER} -d {DB_NAME} | age -r {self.recipient} "
            f"| {aws} s3 cp - {admin_key}"
        )
        self._clear_backups()
        ours = st.recoverctl("backup", "--json")
        pushed = json.loads(ours.stdout)["result"]["offsite"]
        assert [c["status"] for c in pushed] == ["pushed"], pushed
        self.series_for("push.recoverctl", "recoverctl backup (sealed, pushed to S3)",
                        "recoverctl backup", rss=True).add(ours.seconds, ours.max_rss_kb)  # fmt: skip
        admin = st.shell(admin_cmd)
        self.series_for("push.admin", "pg_dump -Fc | age -r | aws s3 cp -",
                        admin_cmd).add(admin.seconds)  # fmt: skip

        out = self.workdir / "pulled"
        shutil.rmtree(out, ignore_errors=True)
        pull = st.recoverctl("pull", "latest", "--target", "offsite", "--identity",
                             str(self.identity), "--output-dir", str(out))  # fmt: skip
        self.series_for("pull.recoverctl", "recoverctl pull latest (decrypted, checked)",
                        "recoverctl pull latest --target offsite --identity KEY",
                        rss=True).add(pull.seconds, pull.max_rss_kb)  # fmt: skip
        byhand = self.workdir / "byhand"
        shutil.rmtree(byhand, ignore_errors=True)
        byhand.mkdir()
        get_cmd = (
            f"{aws} s3 cp {admin_key} {byhand}/x.age --only-show-errors && "
            f"age -d -i {self.identity} -o {byhand}/x.dump {byhand}/x.age"
        )
        got = st.shell(get_cmd)
        self.series_for("pull.admin", "aws s3 cp && age -d", get_cmd).add(got.seconds)
        self.meta.setdefault("sizes", {})[f"round{n}"] = {
            "backup_bytes": json.loads(ours.stdout)["result"]["size"],
            "sealed_bytes": pushed[0]["size"],
        }

    def run(self) -> None:
        self.setup()
        for n in range(1, self.args.repeat + 1):
            log(f"round {n} of {self.args.repeat}")
            self.round(n)


def verdicts(series: dict[str, measure.Series]) -> list[str]:
    lines = []
    for what in ("push", "pull"):
        ours, theirs = series[f"{what}.recoverctl"], series[f"{what}.admin"]
        ratio = ours.median / theirs.median
        verdict = "pass" if ratio <= RATIO_TARGET else "MISS"
        lines.append(
            f"{what}: {ours.median:.2f} s vs {theirs.median:.2f} s = {ratio:.2f}x "
            f"(≤ {RATIO_TARGET:.2f}x): {verdict}"
        )
        peak = (ours.peak_rss_kb or 0) / 1024
        verdict = "pass" if peak < RSS_TARGET_MIB else "MISS"
        lines.append(f"{what}: peak RSS {peak:.1f} MiB (< {RSS_TARGET_MIB} MiB): {verdict}")
    return lines


def write(results: Path, stem: str, meta: dict[str, Any], series: dict[str, measure.Series],
          lines: list[str]) -> Path:  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    rows = ["| measurement | median s | min s | peak RSS |", "| --- | ---: | ---: | ---: |"]
    for s in series.values():
        rss = f"{s.peak_rss_kb / 1024:.1f} MiB" if s.peak_rss_kb else ""
        rows.append(f"| {s.label} | {s.median:.2f} | {s.min:.2f} | {rss} |")
    md = results / f"{stem}.md"
    md.write_text(
        f"# off-site bench ({meta['size']}, scale {meta['scale']}, {meta['repeat']} rounds)\n\n"
        + "\n".join(rows)
        + "\n\n"
        + "\n".join(f"- {line}" for line in lines)
        + "\n"
    )
    write_json(results / f"{stem}.json", meta, series, lines)
    return md


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("age") is None or shutil.which("aws") is None:
        raise SystemExit("needs age and the aws CLI (apt-get install age awscli).")
    interrupt_on_sigterm()
    imgs = images()
    workdir = Path(tempfile.mkdtemp(prefix="rctl-bench-offsite-"))
    started = datetime.now(UTC)
    stack = OffsiteStack.create(workdir / "project", PROJECT, imgs)
    assert isinstance(stack, OffsiteStack)
    stack.config = workdir / "config.toml"
    stack.config.write_text("")
    failed: BaseException | None = None
    with S3Server.start(workdir / "moto") as s3:
        bench = Bench(stack, s3, workdir, args)
        bench.meta.update(size=args.size, scale=args.scale, repeat=args.repeat,
                          started_at=f"{started:%Y-%m-%d %H:%M:%S}",
                          rss_method="wait4(2) ru_maxrss of the recoverctl process")  # fmt: skip
        try:
            if stack.leftovers():
                stack.down()
            log(f"recoverctl up ({PROJECT} in {workdir})")
            stack.up()
            bench.run()
        except KeyboardInterrupt as exc:
            failed = exc
        except Exception as exc:
            log(f"FAILED: {exc}")
            failed = exc
        finally:
            if args.keep:
                log(f"kept: {workdir}")
            else:
                stack.down()
                shutil.rmtree(workdir, ignore_errors=True)
    if not bench.series:
        return 1
    lines = verdicts(bench.series) if failed is None else [f"failed: {failed}"]
    md = write(args.results, f"offsite-{args.size}-{started:%Y%m%d-%H%M%S}", bench.meta,
               bench.series, lines)  # fmt: skip
    print(md.read_text())
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
