"""What a run found: a table on the terminal (rich), JSON for machines, and a
PNG (matplotlib, Agg) with a latency histogram and throughput over time."""

from __future__ import annotations

import datetime as dt
import json
import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from crab_bench.check import CheckResult


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already-sorted values (q in 0..100)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Latency:
    """Milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ordered = sorted(seconds)
        if not ordered:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        ms = 1000.0
        return cls(
            len(ordered),
            percentile(ordered, 50) * ms,
            percentile(ordered, 95) * ms,
            percentile(ordered, 99) * ms,
            ordered[-1] * ms,
            sum(ordered) / len(ordered) * ms,
        )

    def to_json(self) -> dict[str, float]:
        return {k: _round(v) for k, v in self.__dict__.items()}

    def brief(self) -> str:
        return f"p50 {self.p50:.1f} / p95 {self.p95:.1f} / p99 {self.p99:.1f} / max {self.max:.1f}"


def _round(value: float) -> float:
    return value if math.isnan(value) else round(value, 3)


def mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


@dataclass
class Row:
    metric: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclass
class Report:
    workload: str
    params: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # failures besides lost messages
    notes: list[str] = field(default_factory=list)
    histograms: dict[str, Sequence[float]] = field(default_factory=dict)  # label -> seconds
    timelines: dict[str, dict[str, Sequence[float]]] = field(default_factory=dict)
    latency_label: str = "delivery latency"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.problems

    def row(self, metric: str, value: str, target: str = "", met: bool | None = None) -> None:
        self.rows.append(Row(metric, value, target, met))

    def failures(self) -> list[str]:
        lines = [line for c in self.checks for line in c.describe()]
        return lines + self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "ok": self.ok,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
            "params": self.params,
            "results": self.results,
            "targets": [
                {"metric": r.metric, "value": r.value, "target": r.target, "met": r.met}
                for r in self.rows
                if r.target
            ],
            "checks": [c.to_json() for c in self.checks],
            "problems": self.problems,
            "notes": self.notes,
        }


def render(report: Report, console: Console) -> None:
    shown = ", ".join(f"{k}={v}" for k, v in report.params.items() if v is not None)
    table = Table(title=f"crab bench {report.workload}", caption=shown, caption_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target")
    for r in report.rows:
        verdict = "" if r.met is None else (" [green]met[/]" if r.met else " [red]missed[/]")
        table.add_row(r.metric, r.value, r.target + verdict)
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", style="dim")
    if report.ok:
        checked = sum(c.members for c in report.checks)
        console.print(
            f"[green]PASS[/]: every acknowledged message reached every member exactly once, "
            f"in order ({checked} member checks)"
            if report.checks
            else "[green]PASS[/]"
        )
    else:
        console.print("[red]FAIL[/]:")
        for line in report.failures():
            console.print(f"  {line}", markup=False)


def write_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, default=str)


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8))
    every = [v for values in report.histograms.values() for v in values if v > 0]
    if every:
        low, high = max(min(every) * 1000, 0.01), max(every) * 1000
        bins = np.logspace(math.log10(low), math.log10(high * 1.01), 60)
        for label, values in report.histograms.items():
            data = np.asarray(values, dtype=float) * 1000
            p99 = percentile(sorted(data.tolist()), 99)
            top.hist(data, bins=bins, alpha=0.55, label=f"{label} (p99 {p99:.1f} ms)")
        top.set_xscale("log")
        top.legend()
    top.set_xlabel(f"{report.latency_label} (ms, log scale)")
    top.set_ylabel("count")
    top.set_title(f"crab bench {report.workload}: {report.latency_label}")

    starts = [min(t) for series in report.timelines.values() for t in series.values() if len(t)]
    for phase, series in report.timelines.items():
        for label, times in series.items():
            if not len(times):
                continue
            origin = min(min(t) for t in series.values() if len(t))
            t = np.asarray(times, dtype=float) - origin
            span = max(float(t.max()), 1e-3)
            width = max(span / 100, 0.02)
            counts, edges = np.histogram(t, bins=np.arange(0, span + width, width))
            name = f"{phase}: {label}" if len(report.timelines) > 1 else label
            bottom.plot(edges[:-1], counts / width, label=name, drawstyle="steps-post")
    if starts:
        bottom.legend()
    bottom.set_xlabel("seconds since the phase started")
    bottom.set_ylabel("per second")
    bottom.set_title("throughput over time")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
