"""idle: K connected but idle clients (each with an open session stream) on
one server while a small active room fans out; the server's RSS, and the
active room's latency with and without the idle crowd."""

from __future__ import annotations

import time

from crab_bench import rpc
from crab_bench.protocol import Connect, SignUp, Status
from crab_bench.report import Report, mib
from crab_bench.runner import Bench, fanout, setup_room
from crab_bench.workloads.fanout import add_phase_rows, add_timelines

GIB = 2**30
SETTLE = 2.0  # seconds for the server to settle before its RSS is read


def run(
    bench: Bench, idle: int, members: int, senders: int, messages: int, baseline: bool
) -> Report:
    report = Report(
        "idle",
        {
            "idle": idle,
            "members": members,
            "senders": senders,
            "messages": messages,
            "baseline": baseline,
        },
        notes=bench.notes,
    )
    room = setup_room(bench, members, "idle")
    phases = []
    if baseline:
        before = fanout(bench, room, senders, messages, "without idle clients", 1)
        phases.append(before)
    _, rss_before = bench.server_sample()

    bots = bench.new_bots(idle, "i")
    names = dict(bots)
    placement = bench.spread([i for i, _ in bots])
    signups = {
        w: SignUp([(i, names[i]) for i in idx], rpc.PASSWORD) for w, idx in placement.items()
    }
    bench.say(f"signing up {idle} idle clients")
    started = time.perf_counter()
    bench.setup("signing up idle clients", signups, idle)
    signup_seconds = time.perf_counter() - started
    bench.say(f"connecting {idle} idle clients")
    connects = {w: Connect(idx, chat_id=0, watch=False) for w, idx in placement.items()}
    started = time.perf_counter()
    bench.setup("opening idle session streams", connects, idle)
    connect_seconds = time.perf_counter() - started
    time.sleep(SETTLE)
    _, rss_idle = bench.server_sample()

    loaded = fanout(bench, room, senders, messages, f"with {idle} idle clients", 2)
    phases.append(loaded)
    status = bench.pool.call_all({w: Status() for w in placement})
    still_open = sum(s.open for s in status.values())
    dropped = {name: e for s in status.values() for name, e in s.errors.items()}

    report.row("idle clients connected", f"{still_open:,} of {idle:,}")
    report.row("signing them up took", f"{signup_seconds:.1f} s")
    report.row("opening their streams took", f"{connect_seconds:.1f} s")
    if rss_before is not None and rss_idle is not None:
        per_client = (rss_idle - rss_before) / max(idle, 1)
        report.row("server RSS before idle clients", f"{mib(rss_before)} MiB")
        met = rss_idle <= GIB if idle >= 10_000 else None
        report.row(
            f"server RSS with {idle:,} idle",
            f"{mib(rss_idle)} MiB",
            "<= 1 GiB (10k idle)" if met is not None else "",
            met,
        )
        report.row("RSS per idle client", f"{per_client / 1024:.1f} KiB")
    if baseline:
        add_phase_rows(report, phases[0], "without idle: ")
    add_phase_rows(report, loaded, "with idle: ", targets=not baseline)
    for phase in phases:
        add_timelines(report, phase)
        report.checks.append(phase.check)
    if dropped:
        first = "; ".join(f"{n}: {e}" for n, e in list(dropped.items())[:5])
        report.problems.append(f"{len(dropped)} idle client stream(s) ended: {first}")
    report.results = {
        "idle_clients": idle,
        "idle_open_at_end": still_open,
        "signup_seconds": round(signup_seconds, 1),
        "connect_seconds": round(connect_seconds, 1),
        "server_rss_before_idle_mib": mib(rss_before),
        "server_rss_with_idle_mib": mib(rss_idle),
        "rss_per_idle_client_kib": None
        if rss_before is None or rss_idle is None
        else round((rss_idle - rss_before) / max(idle, 1) / 1024, 1),
        "without_idle": phases[0].to_json() if baseline else None,
        "with_idle": loaded.to_json(),
    }
    return report
