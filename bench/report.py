"""Targets as ratios within one run, and the markdown and JSON reports."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import Series

MIB = 1024  # ru_maxrss is in KiB
RSS_LIMIT_MIB = 80.0
MEDIAN_MIN_RUNS = 5  # verify --deep is judged on medians of at least this many runs
DOWNTIME_LIMIT = 2.0  # seconds the app may be down during a restore (median)
DOWNTIME_GROWTH = 1.25  # large size's downtime within this of the small size's: no growth
# The downtime rows: restore --json's app_downtime_seconds, and the by-hand restore, whose
# downtime is its whole duration (the app's stop is its first step, healthy again its last).
DOWNTIME_ROWS = (
    ("downtime.custom", "recoverctl restore (custom, no safety backup)"),
    ("downtime.sql", "recoverctl restore (sql, no safety backup)"),
    ("downtime.custom.safety", "recoverctl restore (custom, with its safety backup)"),
    ("restore.byhand.custom", "the same restore by hand (its whole duration)"),
)


@dataclass(frozen=True)
class Target:
    """measured/baseline (a ratio) or measured alone, against a limit."""

    name: str
    measured: float
    limit: float
    unit: str  # "x" for a ratio of medians, "s" or "MiB" for an absolute value
    strict: bool  # measured must be below the limit, not merely at most
    baseline: float | None = None
    min_ratio: float | None = None  # the same ratio from the minima, for reference
    informational: bool = False  # shown, never PASS/MISS
    short_of_runs: bool = False  # fewer runs than the target is judged on: n/a
    extra: str = ""  # said after the measured value

    @property
    def value(self) -> float:
        return self.measured / self.baseline if self.baseline else self.measured

    @property
    def passed(self) -> bool:
        return self.value < self.limit if self.strict else self.value <= self.limit

    @property
    def verdict(self) -> str:
        if self.informational:
            return "info"
        if self.short_of_runs:
            return "n/a"
        return "PASS" if self.passed else "MISS"

    def describe(self) -> str:
        op = ("reference " if self.informational else "target ") + ("<" if self.strict else "<=")
        if self.unit == "x":
            extra = f" (min/min {self.min_ratio:.2f}x)" if self.min_ratio is not None else ""
            return (
                f"{self.value:.2f}x{extra}: {self.measured:.2f} s vs {self.baseline:.2f} s"
                f"{self.extra}; {op} {self.limit:.2f}x"
            )
        value = f"{self.value:.2f}" if self.unit == "s" else f"{self.value:.3g}"
        return f"{value} {self.unit}{self.extra}; {op} {self.limit:g} {self.unit}"

    def line(self) -> str:
        return f"{self.verdict:4}  {self.name}: {self.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "value": round(self.value, 4),
            "unit": self.unit,
            "limit": self.limit,
            "strict": self.strict,
            "measured": round(self.measured, 4),
            "baseline": round(self.baseline, 4) if self.baseline is not None else None,
            "min_ratio": round(self.min_ratio, 4) if self.min_ratio is not None else None,
            "extra": self.extra,
        }


def _ratio(
    series: Mapping[str, Series],
    name: str,
    key: str,
    base: str,
    limit: float,
    *,
    strict: bool = False,
    informational: bool = False,
    min_runs: int = 1,
) -> Target | None:
    s, b = series.get(key), series.get(base)
    if s is None or b is None or not s.samples or not b.samples:
        return None
    runs = min(len(s.samples), len(b.samples))
    return Target(
        name,
        s.median,
        limit,
        "x",
        strict,
        baseline=b.median,
        min_ratio=s.min / b.min,
        informational=informational,
        short_of_runs=runs < min_runs,
        extra=f", medians of {len(s.samples)} and {len(b.samples)} runs" if min_runs > 1 else "",
    )


def _peak_rss(series: Mapping[str, Series], name: str, keys: tuple[str, ...]) -> Target | None:
    peaks = [p for k in keys if k in series and (p := series[k].peak_rss_kb) is not None]
    if not peaks:
        return None
    return Target(name, max(peaks) / MIB, RSS_LIMIT_MIB, "MiB", strict=True)


def _absolute(
    series: Mapping[str, Series],
    name: str,
    key: str,
    limit: float,
    *,
    informational: bool = False,
    spread: bool = False,
) -> Target | None:
    s = series.get(key)
    if s is None or not s.samples:
        return None
    extra = (
        f" (min {s.min:.2f}, max {max(s.samples):.2f} over {len(s.samples)} runs)" if spread else ""
    )
    return Target(name, s.median, limit, "s", strict=True, informational=informational, extra=extra)


def other_size(folder: Path, size: str) -> dict[str, Any] | None:
    """The newest complete run of the other size in the results folder: its downtime rows,
    to set beside this run's (whether the downtime grows with the database)."""
    other = "large" if size == "small" else "small"
    runs = sorted(
        (p for p in folder.glob(f"{other}-*.json") if not p.stem.endswith("-failed")),
        key=lambda p: p.stem,
    )
    if not runs:
        return None
    try:
        data = json.loads(runs[-1].read_text())
        found = data["measurements"]
    except (OSError, ValueError, KeyError):
        return None
    return {
        "size": other,
        "file": runs[-1].name,
        "started_at": data.get("started_at"),
        "database_bytes": data.get("database_bytes"),
        "downtime": {k: found[k] for k, _ in DOWNTIME_ROWS if k in found},
    }


def _no_growth(series: Mapping[str, Series], meta: Mapping[str, Any]) -> Target | None:
    """The app's downtime (custom) at the large size against the small size's, whichever of
    the two this run is; None until both sizes have been run."""
    other = meta.get("other_size")
    this = series.get("downtime.custom")
    if not other or this is None or not this.samples:
        return None
    theirs = other["downtime"].get("downtime.custom")
    if not theirs or not theirs.get("median"):
        return None
    small, large = (
        (float(theirs["median"]), this.median)
        if meta.get("size") == "large"
        else (this.median, float(theirs["median"]))
    )
    return Target(
        "app downtime during restore custom does not grow with the database "
        f"(large within {DOWNTIME_GROWTH:.2f}x of small)",
        large,
        DOWNTIME_GROWTH,
        "x",
        False,
        baseline=small,
        extra=f" (large vs small; the {other['size']} run: {other['file']})",
    )


def _load_step(
    series: Mapping[str, Series],
    steps: Mapping[str, Mapping[str, list[float]]],
    fmt: str,
    base: str,
) -> Target | None:
    """recoverctl restore's own load step (from its --json steps) against the raw restore."""
    loads = steps.get(fmt, {}).get("restoring")
    b = series.get(base)
    if not loads or b is None or not b.samples:
        return None
    return Target(
        f"restore {fmt}: its load step alone vs the raw restore",
        statistics.median(loads),
        1.10,
        "x",
        False,
        baseline=b.median,
        min_ratio=min(loads) / b.min,
        informational=True,
    )


def targets(
    series: Mapping[str, Series],
    steps: Mapping[str, Mapping[str, list[float]]] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> list[Target]:
    steps = steps or {}
    meta = meta or {}
    found = [
        _ratio(series, "backup custom within 1.25x of in-container pg_dump -Fc to /dev/null",
               "backup.custom", "dump.limit.custom", 1.25),
        _ratio(series, "backup custom faster than the playbook's raw pipeline (custom)",
               "backup.custom", "dump.raw.custom", 1.0, strict=True),
        _ratio(series, "restore custom (no safety backup) within 1.10x of the same restore by "
               "hand (stop, drop, create, pg_restore, start, wait until healthy)",
               "restore.custom", "restore.byhand.custom", 1.10),
        _absolute(series, "app downtime during restore custom (median) under 2 s",
                  "downtime.custom", DOWNTIME_LIMIT, spread=True),
        _absolute(series, "app downtime during restore sql (median) under 2 s",
                  "downtime.sql", DOWNTIME_LIMIT, spread=True),
        _no_growth(series, meta),
        _ratio(series, f"verify --deep custom within 1.15x of raw pg_restore (median of "
               f">= {MEDIAN_MIN_RUNS} runs)",
               "verify.deep.custom", "verify.raw.custom", 1.15, min_runs=MEDIAN_MIN_RUNS),
        _ratio(series, f"verify --deep sql within 1.15x of raw psql (median of "
               f">= {MEDIAN_MIN_RUNS} runs)",
               "verify.deep.sql", "verify.raw.sql", 1.15, min_runs=MEDIAN_MIN_RUNS),
        _peak_rss(series, "peak RSS of recoverctl backup (custom, sql) under 80 MiB",
                  ("backup.custom", "backup.sql")),
        _peak_rss(series, "peak RSS of recoverctl restore (custom, sql, with safety) under 80 MiB",
                  ("restore.custom", "restore.sql", "restore.custom.safety")),
        _absolute(series, "recoverctl --help (median) under 0.25 s", "startup.help", 0.25),
        _absolute(series, "recoverctl ps (median) under 0.6 s", "startup.ps", 0.6),
        # Not targets, shown for context.
        _ratio(series, "backup sql vs in-container pg_dump -Fp to /dev/null",
               "backup.sql", "dump.limit.sql", 1.25, informational=True),
        _ratio(series, "backup sql vs the playbook's raw pipeline (sql)",
               "backup.sql", "dump.raw.sql", 1.0, strict=True, informational=True),
        _ratio(series, "raw pipeline custom vs in-container pg_dump -Fc to /dev/null",
               "dump.raw.custom", "dump.limit.custom", 1.0, informational=True),
        _ratio(series, "raw pipeline sql vs in-container pg_dump -Fp to /dev/null",
               "dump.raw.sql", "dump.limit.sql", 1.0, informational=True),
        _ratio(series, "restore custom (no safety backup) vs raw pg_restore (the bare load)",
               "restore.custom", "restore.raw.custom", 1.10, informational=True),
        _ratio(series, "restore sql (no safety backup) vs raw psql (the bare load)",
               "restore.sql", "restore.raw.sql", 1.10, informational=True),
        _ratio(series, "restore custom with safety backup vs the same restore by hand",
               "restore.custom.safety", "restore.byhand.custom", 1.10, informational=True),
        _load_step(series, steps, "custom", "restore.raw.custom"),
        _load_step(series, steps, "sql", "restore.raw.sql"),
        _absolute(series, "app downtime during restore custom with its safety backup (median)",
                  "downtime.custom.safety", DOWNTIME_LIMIT, informational=True, spread=True),
        _absolute(series, "app downtime of the same restore by hand: its whole duration (median)",
                  "restore.byhand.custom", DOWNTIME_LIMIT, informational=True, spread=True),
    ]  # fmt: skip
    return [t for t in found if t is not None]


# --- reports -----------------------------------------------------------------------------


def _mb(n: int | None) -> str:
    return f"{n / 1e6:.1f} MB" if n is not None else "-"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(
    meta: Mapping[str, Any],
    series: Mapping[str, Series],
    steps: Mapping[str, Mapping[str, list[float]]],
    found: list[Target],
) -> str:
    lines = [
        f"# recoverctl benchmark: {meta['size']} (pgbench scale {meta['scale']})",
        "",
        f"- run: {meta['started_at']} to {meta['finished_at']} (UTC), "
        f"{meta['repeat']} repeats per measurement (verify: "
        f"{meta.get('verify_repeat', meta['repeat'])}, start-up: {meta['startup_repeat']})",
        f"- load average at the start {meta['machine']['loadavg_at_start']} on "
        f"{meta['machine']['cpus']} CPUs, at the end {meta.get('loadavg_at_end')}",
        f"- machine: {meta['machine']['summary']}",
        f"- database: {_mb(meta.get('database_bytes'))} (pg_database_size after pgbench -i), "
        f"dumps: custom {_mb(meta.get('dump_bytes', {}).get('custom'))}, "
        f"sql {_mb(meta.get('dump_bytes', {}).get('sql'))}",
        f"- PostgreSQL {meta.get('server_version', '?')} in `{meta['images']['POSTGRES_IMAGE']}`; "
        f"recoverctl {meta.get('recoverctl_version', '?')}; Python {meta['machine']['python']}",
        f"- recoverctl source: {meta.get('source', '?')}; uncommitted in src/: "
        f"{', '.join(meta.get('source_changes') or []) or 'none'}",
        f"- other containers running on the engine at the start: "
        f"{', '.join(meta['machine']['other_containers']) or 'none'}",
        "",
        "## Measurements (seconds, wall clock)",
        "",
        "| measurement | command | runs | min s | median s | peak RSS |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in series.values():
        if not s.samples:
            continue
        rss = s.peak_rss_kb
        lines.append(
            f"| {_cell(s.label)} | `{_cell(s.command)}` | {len(s.samples)} | {s.min:.3f} | "
            f"{s.median:.3f} | {f'{rss / MIB:.1f} MiB' if rss is not None else ''} |"
        )
    if steps:
        formats = list(steps)
        names: list[str] = []
        for per in steps.values():
            names.extend(n for n in per if n not in names)
        lines += [
            "",
            "## recoverctl restore, step by step (median seconds, from `restore --json`)",
            "",
            "| step | " + " | ".join(formats) + " |",
            "| --- |" + " ---: |" * len(formats),
        ]
        for name in names:
            cells = [
                f"{statistics.median(steps[f][name]):.3f}" if steps[f].get(name) else ""
                for f in formats
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _downtime_table(meta, series)
    lines += [
        "",
        "## Targets (ratios of medians within this run)",
        "",
        "| result | target | measured |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {t.verdict} | {_cell(t.name)} | {_cell(t.describe())} |" for t in found]
    lines.append("")
    return "\n".join(lines)


def _spread(median: float, low: float, high: float, runs: int) -> str:
    return f"{median:.2f} ({low:.2f}-{high:.2f}, {runs} runs)"


def _downtime_table(meta: Mapping[str, Any], series: Mapping[str, Series]) -> list[str]:
    """This run's downtime rows beside the other size's newest run, when there is one."""
    other = meta.get("other_size") or None
    rows = [(k, label) for k, label in DOWNTIME_ROWS if k in series and series[k].samples]
    if not rows:
        return []
    this = f"{meta['size']}, {_mb(meta.get('database_bytes'))}"
    head = ["the app's downtime during", f"{this}: median s (min-max)"]
    if other:
        head.append(f"{other['size']}, {_mb(other.get('database_bytes'))}: median s (min-max)")
    lines = [
        "",
        "## The app's downtime (seconds: app stopped -> healthy again)",
        "",
        "recoverctl restore's from its `--json` (`app_downtime_seconds`: the first stop asked "
        "of the engine to healthy again); the by-hand restore's is its whole duration (its "
        "first step stops the app, its last sees it healthy)."
        + (
            f" The {other['size']} column is from {other['file']} ({other.get('started_at')} UTC)."
            if other
            else ""
        ),
        "",
        "| " + " | ".join(head) + " |",
        "| --- |" + " ---: |" * (len(head) - 1),
    ]
    for key, label in rows:
        s = series[key]
        cells = [label, _spread(s.median, s.min, max(s.samples), len(s.samples))]
        if other:
            theirs = other["downtime"].get(key)
            cells.append(
                _spread(theirs["median"], theirs["min"], max(theirs["samples"]),
                        len(theirs["samples"]))
                if theirs and theirs.get("samples")
                else "-"
            )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write(
    folder: Path,
    stem: str,
    meta: Mapping[str, Any],
    series: Mapping[str, Series],
    steps: Mapping[str, Mapping[str, list[float]]],
    found: list[Target],
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / f"{stem}.md"
    js = folder / f"{stem}.json"
    md.write_text(markdown(meta, series, steps, found))
    payload = {
        **meta,
        "measurements": {k: s.to_json() for k, s in series.items() if s.samples},
        "restore_steps": {
            f: {name: [round(v, 4) for v in vals] for name, vals in per.items()}
            for f, per in steps.items()
        },
        "targets": [t.to_json() for t in found],
    }
    js.write_text(json.dumps(payload, indent=2) + "\n")
    return md, js
