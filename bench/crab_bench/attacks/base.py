"""What every attack shares: whom it attacks (Target) and what it got (Tally)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from grpclib.exceptions import GRPCError, StreamTerminatedError

GRACE = 5.0  # seconds a call made before the attack's end may take to be answered


@dataclass(frozen=True)
class Target:
    """The server and the accounts the attacks use (made before the first phase)."""

    host: str
    port: int
    token: str  # the attacker: a member of `flood_chat`
    flood_chat: int  # the attacker's chat with a long history (resume-flood)
    garbage_token: str  # a second attacker, whose chats garbage may change at will
    garbage_chat: int
    victim: str  # the real user's username (signin-hammer guesses its password)
    seed: int


@dataclass
class Tally:
    """What the attacker got: a count per outcome (a gRPC status name,
    "connection closed", "GOAWAY ...", "exception X"), the time each answered
    call took, and figures of the attack's own (frames sent, bytes read...)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    answers: list[float] = field(default_factory=list)  # seconds per answered call
    figures: dict[str, float] = field(default_factory=dict)

    def count(self, outcome: str, times: int = 1) -> None:
        self.outcomes[outcome] += times

    def answered(self, seconds: float) -> None:
        self.answers.append(seconds)

    def figure(self, name: str, value: float) -> None:
        self.figures[name] = value

    def add(self, name: str, value: float = 1) -> None:
        self.figures[name] = self.figures.get(name, 0) + value

    def brief(self) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in self.outcomes.most_common()) or "nothing"

    def to_json(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes.most_common()),
            "answered": len(self.answers),
            "figures": {k: round(v, 3) for k, v in self.figures.items()},
        }


Attack = Callable[[Target, float, Tally], Awaitable[None]]  # (target, until (monotonic), tally)


def left(until: float) -> float:
    """Seconds until `until` (time.monotonic()), never negative."""
    return max(0.0, until - time.monotonic())


async def grpc_outcome(tally: Tally, call: Awaitable[Any], answer_by: float) -> str:
    """Awaits one grpclib call and counts how it ended."""
    started = time.perf_counter()
    try:
        await asyncio.wait_for(call, left(answer_by))
    except GRPCError as error:
        outcome = error.status.name
    except TimeoutError:
        outcome = "no answer in time"
    except (StreamTerminatedError, ConnectionError, OSError) as error:
        outcome = f"connection failed ({type(error).__name__})"
    else:
        outcome = "OK"
    if not outcome.startswith(("no answer", "connection")):
        tally.answered(time.perf_counter() - started)
    tally.count(outcome)
    return outcome


def varint(value: int) -> bytes:
    """A protobuf varint, for bodies the attacks write by hand."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
