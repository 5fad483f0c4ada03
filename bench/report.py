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
        return "PASS" if self.passed else "MISS"

    def describe(self) -> str:
        op = "<" if self.strict else "<="
        if self.unit == "x":
            extra = f" (min/min {self.min_ratio:.2f}x)" if self.min_ratio is not None else ""
            return (
                f"{self.value:.2f}x{extra}: {self.measured:.2f} s vs {self.baseline:.2f} s; "
                f"target {op} {self.limit:.2f}x"
            )
        return f"{self.value:.3g} {self.unit}; target {op} {self.limit:g} {self.unit}"

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
) -> Target | None:
    s, b = series.get(key), series.get(base)
    if s is None or b is None or not s.samples or not b.samples:
        return None
    return Target(
        name,
        s.median,
        limit,
        "x",
        strict,
        baseline=b.median,
        min_ratio=s.min / b.min,
        informational=informational,
    )


def _peak_rss(series: Mapping[str, Series], name: str, keys: tuple[str, ...]) -> Target | None:
    peaks = [p for k in keys if k in series and (p := series[k].peak_rss_kb) is not None]
    if not peaks:
        return None
    return Target(name, max(peaks) / MIB, RSS_LIMIT_MIB, "MiB", strict=True)


def _absolute(series: Mapping[str, Series], name: str, key: str, limit: float) -> Target | None:
    s = series.get(key)
    if s is None or not s.samples:
        return None
    return Target(name, s.median, limit, "s", strict=True)


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
    series: Mapping[str, Series], steps: Mapping[str, Mapping[str, list[float]]] | None = None
) -> list[Target]:
    steps = steps or {}
    found = [
        _ratio(series, "backup custom within 1.25x of in-container pg_dump -Fc to /dev/null",
               "backup.custom", "dump.limit.custom", 1.25),
        _ratio(series, "backup custom faster than the playbook's raw pipeline (custom)",
               "backup.custom", "dump.raw.custom", 1.0, strict=True),
        _ratio(series, "restore custom (no safety backup) within 1.10x of raw pg_restore",
               "restore.custom", "restore.raw.custom", 1.10),
        _ratio(series, "restore sql (no safety backup) within 1.10x of raw psql",
               "restore.sql", "restore.raw.sql", 1.10),
        _ratio(series, "verify --deep custom within 1.15x of raw pg_restore",
               "verify.deep.custom", "restore.raw.custom", 1.15),
        _ratio(series, "verify --deep sql within 1.15x of raw psql",
               "verify.deep.sql", "restore.raw.sql", 1.15),
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
        _ratio(series, "restore custom with safety backup vs raw pg_restore",
               "restore.custom.safety", "restore.raw.custom", 1.10, informational=True),
        _load_step(series, steps, "custom", "restore.raw.custom"),
        _load_step(series, steps, "sql", "restore.raw.sql"),
        _ratio(series, "restore custom vs the same restore by hand (stop, drop, load, start)",
               "restore.custom", "restore.byhand.custom", 1.10, informational=True),
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
        f"{meta['repeat']} repeats per measurement (startup: {meta['startup_repeat']})",
        f"- machine: {meta['machine']['summary']}",
        f"- database: {_mb(meta.get('database_bytes'))} (pg_database_size after pgbench -i), "
        f"dumps: custom {_mb(meta.get('dump_bytes', {}).get('custom'))}, "
        f"sql {_mb(meta.get('dump_bytes', {}).get('sql'))}",
        f"- PostgreSQL {meta.get('server_version', '?')} in `{meta['images']['POSTGRES_IMAGE']}`; "
        f"recoverctl {meta.get('recoverctl_version', '?')}; Python {meta['machine']['python']}",
        f"- recoverctl source: {meta.get('source', '?')}; uncommitted in src/: "
        f"{', '.join(meta.get('source_changes') or []) or 'none'}",
        f"- other containers running on the engine at the start: "
        f"{', '.join(meta['machine']['other_containers']) or 'none'}; load average at the "
        f"start {meta['machine']['loadavg_at_start']}, at the end {meta.get('loadavg_at_end')}",
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
