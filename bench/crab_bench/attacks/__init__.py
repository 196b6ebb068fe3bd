"""`crab bench abuse`'s attacks, each a small function
`attack(target, until, tally)` that runs until `until` (time.monotonic())
and counts what it got in `tally`; in the order a run takes them."""

from __future__ import annotations

from crab_bench.attacks.accounts import room_flood, signin_hammer, signup_flood
from crab_bench.attacks.base import Attack, Tally, Target
from crab_bench.attacks.edge import huge_request, idle_connections, unknown_fields
from crab_bench.attacks.garbage import garbage
from crab_bench.attacks.h2 import ping_flood, rapid_reset
from crab_bench.attacks.stream import big_resume, fill_chat, resume_flood

ATTACKS: dict[str, Attack] = {
    "unknown-fields": unknown_fields,
    "huge-request": huge_request,
    "idle-connections": idle_connections,
    "signin-hammer": signin_hammer,
    "garbage": garbage,
    "resume-flood": resume_flood,
    "big-resume": big_resume,
    "rapid-reset": rapid_reset,
    "ping-flood": ping_flood,
    "signup-flood": signup_flood,
    "room-flood": room_flood,
}
NEED_HISTORY = {"resume-flood"}  # attacks that need the attacker's chat filled

__all__ = ["ATTACKS", "NEED_HISTORY", "Attack", "Tally", "Target", "fill_chat"]
