"""signin: concurrent sign-ins, again and again (argon2 at its real cost),
while a room fans out; the room's delivery latency meanwhile."""

from __future__ import annotations

import time

from crab_bench import rpc
from crab_bench.protocol import SignIns, SignUp
from crab_bench.report import Latency, Report
from crab_bench.runner import Bench, fanout, setup_room
from crab_bench.workloads.fanout import add_phase_rows, add_timelines

WARMUP = 1.0  # seconds of sign-ins before the fan-out starts


def run(
    bench: Bench,
    signins: int,
    members: int,
    senders: int,
    messages: int,
    baseline: bool,
    hashing: str | None,
) -> Report:
    report = Report(
        "signin",
        {
            "signins": signins,
            "members": members,
            "senders": senders,
            "messages": messages,
            "baseline": baseline,
            "password_hashing": hashing,
        },
        notes=bench.notes,
    )
    signer = bench.pool.size - 1  # the extra load generator, for sign-ins only
    room = setup_room(bench, members, "signin")
    bots = bench.new_bots(signins, "s")
    bench.setup(
        "signing up the sign-in accounts",
        {signer: SignUp(bots, rpc.PASSWORD)},
        signins,
    )
    phases = []
    if baseline:
        phases.append(fanout(bench, room, senders, messages, "without sign-ins", 1))
    bench.pool.stop.clear()
    signing_in = bench.pool.send(signer, SignIns([n for _, n in bots], rpc.PASSWORD))
    bench.say(f"{signins} concurrent sign-in loops running")
    started = time.perf_counter()
    time.sleep(WARMUP)
    loaded = fanout(bench, room, senders, messages, f"during {signins} sign-in loops", 2)
    bench.pool.stop.set()
    found = bench.pool.recv(signing_in)
    seconds = time.perf_counter() - started
    phases.append(loaded)

    latency = Latency.of(found.latencies)
    report.row("sign-ins completed", f"{latency.count}")
    report.row("sign-ins/s", f"{latency.count / seconds:.1f}")
    report.row("sign-in latency p50", f"{latency.p50:.0f} ms")
    report.row("sign-in latency p99", f"{latency.p99:.0f} ms")
    if baseline:
        add_phase_rows(report, phases[0], "without sign-ins: ")
    add_phase_rows(report, loaded, "during sign-ins: ", targets=False)
    p99 = loaded.latency.p99
    report.row(
        "delivery p99 during sign-ins", f"{p99:.1f} ms", "< 20 ms", p99 < 20 if members else None
    )
    for phase in phases:
        add_timelines(report, phase)
        report.checks.append(phase.check)
    if found.failures:
        report.problems.append(
            f"{len(found.failures)} sign-in(s) failed: " + "; ".join(found.failures[:5])
        )
    if hashing == "cheap":
        report.notes.append("password hashing cheap: sign-ins cost far less than in production")
    report.results = {
        "signins": latency.count,
        "signins_per_s": round(latency.count / seconds, 2),
        "signin_latency_ms": latency.to_json(),
        "without_signins": phases[0].to_json() if baseline else None,
        "during_signins": loaded.to_json(),
    }
    return report
