"""abuse: one attack at a time against the server while a bystander (two
members of a room, one sending every 50 ms, both listening) and a real user
(signing in once a second, on a new connection from another loopback
address) carry on; per phase, what the attacker got, the bystander's
delivery latency and losses, the real user's sign-in time, and the
server's CPU and RSS. A baseline phase without an attack comes first.

The attacks run in this (the coordinator's) process on their own event
loop; the bystander and the real user in the load generators, so an
attacker's busy loop does not delay their clocks."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grpclib.client import Channel

from crab_bench import rpc
from crab_bench.attacks import ATTACKS, NEED_HISTORY, Tally, Target, fill_chat
from crab_bench.check import CheckResult, check_delivery
from crab_bench.protocol import Drain, Pace, Reset, UserSignIns
from crab_bench.report import Latency, Report, mib
from crab_bench.runner import Bench, Room, setup_room

BASELINE = "baseline"
SEND_EVERY = 0.05  # the bystander's pace
SIGN_IN_EVERY = 1.0  # the real user's pace
SETTLED_CPU = 0.25  # of a core: below it, the server is back to idle
SETTLE_MAX = 60.0  # seconds to wait for that after an attack
SETTLE_STEP = 0.5
ATTACK_LIMIT = 30.0  # seconds past its phase after which an attack is cut off


@dataclass
class Outcome:
    """One phase: the attack's tally and what the others saw meanwhile."""

    attack: str
    tally: Tally
    check: CheckResult
    sent: int
    latencies: list[float]  # the bystander's deliveries (both members), seconds
    signins: list[float]  # the real user's sign-ins, seconds
    signin_failures: list[str]
    seconds: float
    cpu_seconds: float | None
    peak_rss: int | None
    settle_seconds: float | None

    @property
    def lost(self) -> int:
        return sum(len(p.missing) for p in self.check.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "attacker": self.tally.to_json(),
            "attacker_answer_ms": Latency.of(self.tally.answers).to_json(),
            "bystander": {
                "sent": self.sent,
                "acked": self.check.expected,
                "lost": self.lost,
                "unanswered_sends": len(self.check.send_failures),
                "delivery_ms": Latency.of(self.latencies).to_json(),
                "ok": self.check.ok,
            },
            "signin": {
                "ms": Latency.of(self.signins).to_json(),
                "failures": len(self.signin_failures),
                "failure_kinds": sorted({f.partition(":")[0] for f in self.signin_failures}),
            },
            "seconds": round(self.seconds, 2),
            "server_cpu_seconds": None if self.cpu_seconds is None else round(self.cpu_seconds, 2),
            "server_peak_rss_mib": mib(self.peak_rss),
            "server_busy_after_s": None
            if self.settle_seconds is None
            else round(self.settle_seconds, 1),
        }


def run(bench: Bench, attacks: list[str], seconds: float, history: int) -> Report:
    report = Report(
        "abuse",
        {"attacks": ",".join(attacks), "seconds": seconds, "history": history},
        notes=bench.notes,
    )
    room = setup_room(bench, 2, "bystander")
    signer = bench.pool.size - 1  # the extra load generator: the real user
    user = f"user{bench.run_id}"
    target = bench.call(lambda channel: _accounts(channel, bench, user))
    if NEED_HISTORY & set(attacks):
        bench.say(f"filling the attacker's chat with {history} messages")
        _run_async(fill_chat(target, history))
    local = rpc.other_loopback(bench.endpoint.host)
    if local:
        report.notes.append(f"the real user signs in from {local}, the attackers from the default")
    phases: list[Outcome] = []
    for n, attack in enumerate([BASELINE, *attacks]):
        if bench.probe is not None and not _alive(bench):
            report.problems.append(f"the server is gone: {attack} and later phases not run")
            break
        phases.append(_phase(bench, room, signer, user, local, target, attack, seconds, n))
    for phase in phases:
        _rows(report, phase)
        report.checks.append(phase.check)
        report.histograms[phase.attack] = phase.latencies
    report.results = {"phases": [p.to_json() for p in phases]}
    report.latency_label = "bystander delivery latency"
    return report


async def _accounts(channel: Channel, bench: Bench, user: str) -> Target:
    """The real user; the attacker with its chat; the garbage attacker with its own."""
    await rpc.sign_up(channel, user)
    attacker = await rpc.sign_up(channel, f"atk{bench.run_id}")
    flood = await rpc.create_room(channel, attacker.access_token, f"flood {bench.run_id}")
    junk = await rpc.sign_up(channel, f"gbg{bench.run_id}")
    junk_chat = await rpc.create_room(channel, junk.access_token, f"garbage {bench.run_id}")
    return Target(
        host=bench.endpoint.host,
        port=bench.endpoint.port,
        token=attacker.access_token,
        flood_chat=flood,
        garbage_token=junk.access_token,
        garbage_chat=junk_chat,
        victim=user,
        seed=int.from_bytes(secrets.token_bytes(4), "big"),
    )


def _run_async(coroutine: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coroutine)


def _attack(name: str, target: Target, seconds: float) -> Tally:
    """Runs one attack to its end (cut off ATTACK_LIMIT after its phase);
    whatever it raises is counted, never raised."""
    tally = Tally()

    async def go() -> None:
        until = time.monotonic() + seconds
        try:
            await asyncio.wait_for(ATTACKS[name](target, until, tally), seconds + ATTACK_LIMIT)
        except TimeoutError:
            tally.count("attack cut off")
        except Exception as error:
            tally.count(f"exception {type(error).__name__}")
            tally.figures.setdefault("exception: " + str(error)[:80], 1)

    _run_async(go())
    return tally


def _phase(
    bench: Bench,
    room: Room,
    signer: int,
    user: str,
    local: str | None,
    target: Target,
    attack: str,
    seconds: float,
    n: int,
) -> Outcome:
    pool = bench.pool
    sender = room.members[0]
    paced = room.worker_of(sender)
    pool.call_all({w: Reset() for w in room.placement})
    pool.stop.clear()
    cpu0, _ = bench.server_sample()
    start = time.time()
    pacing = pool.send(paced, Pace(sender, room.chat_id, SEND_EVERY, n))
    signing_in = pool.send(signer, UserSignIns(user, rpc.PASSWORD, SIGN_IN_EVERY, local))
    bench.say(f"{attack}: {seconds:g} s" + ("" if attack == BASELINE else " of attack"))
    if attack == BASELINE:
        time.sleep(seconds)
        tally = Tally()
    else:
        tally = _attack(attack, target, seconds)
    pool.stop.set()
    sent = pool.recv(pacing)
    signins = pool.recv(signing_in)
    drain = Drain(len(sent.acked), max(sent.acked, default=0), bench.drain_timeout)
    drained = pool.call_all({w: drain for w in room.placement})
    end = time.time()
    cpu1, rss1 = _sample(bench)
    received: dict[str, Sequence[int]] = {}
    errors: dict[str, str] = {}
    latencies: list[float] = []
    for found in drained.values():
        received.update(found.received)
        errors.update(found.errors)
        for values in found.latencies.values():
            latencies.extend(values)
    check = check_delivery(sent.acked, received, errors, sent.failures)
    settle = _settle(bench) if attack != BASELINE else None
    return Outcome(
        attack=attack,
        tally=tally,
        check=check,
        sent=sent.sent,
        latencies=latencies,
        signins=signins.latencies,
        signin_failures=signins.failures,
        seconds=end - start,
        cpu_seconds=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        peak_rss=max(bench.probe.peak_rss(start, end), rss1 or 0) if bench.probe else None,
        settle_seconds=settle,
    )


def _sample(bench: Bench) -> tuple[float | None, int | None]:
    try:
        return bench.server_sample()
    except Exception:  # psutil.Error: the server is gone
        return None, None


def _alive(bench: Bench) -> bool:
    return _sample(bench)[0] is not None


def _settle(bench: Bench) -> float | None:
    """Seconds until the server's CPU falls below SETTLED_CPU of a core
    (it may still be working off what the attack queued)."""
    if bench.probe is None:
        return None
    started = time.monotonic()
    before, _ = _sample(bench)
    at = time.monotonic()
    while time.monotonic() - started < SETTLE_MAX:
        time.sleep(SETTLE_STEP)
        cpu, _ = _sample(bench)
        now = time.monotonic()
        if cpu is None or before is None:
            return None
        if (cpu - before) / (now - at) < SETTLED_CPU:
            return now - started - SETTLE_STEP
        before, at = cpu, now
    return SETTLE_MAX


def _rows(report: Report, phase: Outcome) -> None:
    name = phase.attack
    if name != BASELINE:
        report.row(f"{name}: attacker got", phase.tally.brief())
        answers = Latency.of(phase.tally.answers)
        if answers.count:
            report.row(
                f"{name}: attacker's answers p50 / max",
                f"{answers.p50:,.0f} / {answers.max:,.0f} ms ({answers.count:,})",
            )
        if phase.tally.figures:
            report.row(
                f"{name}: attack figures",
                "; ".join(f"{k} {_number(v)}" for k, v in phase.tally.figures.items()),
            )
    lat = Latency.of(phase.latencies)
    report.row(
        f"{name}: bystander delivery p50 / p99 / max",
        f"{lat.p50:.1f} / {lat.p99:.1f} / {lat.max:.1f} ms",
    )
    report.row(
        f"{name}: bystander sent / acked / lost / unanswered",
        f"{phase.sent} / {phase.check.expected} / {phase.lost} / {len(phase.check.send_failures)}",
    )
    signin = Latency.of(phase.signins)
    failed = len(phase.signin_failures)
    report.row(
        f"{name}: real user's sign-in p50 / max",
        f"{signin.p50:,.0f} / {signin.max:,.0f} ms ({signin.count} ok, {failed} failed)",
    )
    if phase.cpu_seconds is not None:
        report.row(
            f"{name}: server CPU / peak RSS",
            f"{phase.cpu_seconds:.2f} s in {phase.seconds:.1f} s / {mib(phase.peak_rss)} MiB",
        )
    if phase.settle_seconds is not None:
        report.row(f"{name}: server busy after the phase", f"{phase.settle_seconds:.1f} s")


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
