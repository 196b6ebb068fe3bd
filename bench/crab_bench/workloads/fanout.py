"""fanout: a room of M listening members, S senders sending N messages each."""

from __future__ import annotations

from crab_bench.report import Latency, Report, mib
from crab_bench.runner import Bench, Phase, fanout, setup_room

# The targets hold at 100 members / 10 senders and 20 members / 5 senders.
BIG = (100, 10)
SMALL = (20, 5)


def add_phase_rows(report: Report, phase: Phase, prefix: str = "", targets: bool = True) -> None:
    """The phase's figures; with `targets`, the issue's targets where the
    room's shape is the one they are set for."""
    lat = phase.latency
    shape = (phase.members, phase.senders)
    big, small = targets and shape == BIG, targets and shape == SMALL
    report.row(f"{prefix}acknowledged sends", f"{len(phase.ack_times)}")
    report.row(
        f"{prefix}acked sends/s",
        f"{phase.acks_per_second:,.0f}",
        ">= 400" if big else "",
        phase.acks_per_second >= 400 if big else None,
    )
    report.row(
        f"{prefix}deliveries/s",
        f"{phase.deliveries_per_second:,.0f}",
        ">= 40,000" if big else "",
        phase.deliveries_per_second >= 40_000 if big else None,
    )
    report.row(f"{prefix}delivery latency p50", f"{lat.p50:.1f} ms")
    report.row(f"{prefix}delivery latency p95", f"{lat.p95:.1f} ms")
    target = "<= 50 ms" if big else "<= 10 ms" if small else ""
    limit = 50.0 if big else 10.0
    report.row(
        f"{prefix}delivery latency p99",
        f"{lat.p99:.1f} ms",
        target,
        lat.p99 <= limit if target else None,
    )
    report.row(f"{prefix}delivery latency max", f"{lat.max:.1f} ms")
    report.row(f"{prefix}send -> ack p50", f"{Latency.of(phase.round_trips).p50:.1f} ms")
    if phase.cpu_seconds is not None:
        report.row(f"{prefix}server CPU", f"{phase.cpu_seconds:.2f} s")
    if phase.peak_rss is not None:
        report.row(f"{prefix}server peak RSS", f"{mib(phase.peak_rss)} MiB")
    wall = max(phase.end - phase.start, 1e-9)
    report.row(
        f"{prefix}load generator CPU",
        f"{phase.loadgen_cpu_seconds:.2f} s ({phase.loadgen_cpu_seconds / wall:.0%} of a core)",
    )


def add_timelines(report: Report, phase: Phase) -> None:
    report.histograms[phase.label] = phase.latencies
    report.timelines[phase.label] = {
        "acked sends/s": phase.ack_times,
        "deliveries/s": phase.delivery_times,
    }


def run(bench: Bench, members: int, senders: int, messages: int, typing: bool = False) -> Report:
    report = Report(
        "fanout",
        {"members": members, "senders": senders, "messages": messages, "typing": typing},
        notes=bench.notes,
    )
    room = setup_room(bench, members, "fanout")
    phase = fanout(bench, room, senders, messages, "fanout", 1, typing)
    add_phase_rows(report, phase)
    add_timelines(report, phase)
    report.results = {"fanout": phase.to_json()}
    report.checks.append(phase.check)
    return report
