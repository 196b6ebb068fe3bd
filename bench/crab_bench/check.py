"""The correctness check: every acknowledged message reached every member
exactly once and in order, and nothing else arrived. A pure function over
what the senders had acknowledged and what each member received."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SHOW = 10  # ids listed per kind of problem before "... and N more"


@dataclass(frozen=True)
class MemberProblem:
    member: str
    missing: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    # (previous id, id) where a message came after a newer one
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)
    stream_error: str | None = None

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"lost {len(self.missing)} message(s): ids {_ids(self.missing)}")
        if self.duplicates:
            parts.append(f"got {len(self.duplicates)} id(s) twice: {_ids(self.duplicates)}")
        if self.out_of_order:
            pairs = ", ".join(f"{b} after {a}" for a, b in self.out_of_order[:SHOW])
            more = len(self.out_of_order) - SHOW
            parts.append(f"out of order: {pairs}" + (f" ... and {more} more" if more > 0 else ""))
        if self.unexpected:
            parts.append(
                f"got {len(self.unexpected)} never-acknowledged id(s): {_ids(self.unexpected)}"
            )
        if self.stream_error:
            parts.append(f"its stream failed: {self.stream_error}")
        return f"member {self.member}: " + "; ".join(parts)


@dataclass(frozen=True)
class CheckResult:
    members: int
    expected: int  # acknowledged messages each member should have received
    problems: list[MemberProblem]
    send_failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.send_failures

    def describe(self, limit: int = 20) -> list[str]:
        lines = [p.describe() for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more member(s) with problems")
        if self.send_failures:
            lines.append(
                f"{len(self.send_failures)} send(s) not acknowledged: "
                + "; ".join(self.send_failures[:SHOW])
            )
        return lines

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "members": self.members,
            "expected_per_member": self.expected,
            "problems": [
                {
                    "member": p.member,
                    "missing": p.missing,
                    "duplicates": p.duplicates,
                    "out_of_order": [list(pair) for pair in p.out_of_order],
                    "unexpected": p.unexpected,
                    "stream_error": p.stream_error,
                }
                for p in self.problems
            ],
            "send_failures": self.send_failures,
        }


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOW])
    return shown + (f" ... and {len(ids) - SHOW} more" if len(ids) > SHOW else "")


def check_delivery(
    acked: Iterable[int],
    received: Mapping[str, Sequence[int]],
    stream_errors: Mapping[str, str] | None = None,
    send_failures: Sequence[str] = (),
) -> CheckResult:
    """`acked`: the message ids the server acknowledged to the senders.
    `received`: per member, the ids of the room's messages in arrival order.
    A member must have received exactly the acknowledged ids, each once, in
    increasing order (ids are ordered within a chat)."""
    expected = sorted(set(acked))
    wanted = set(expected)
    errors = stream_errors or {}
    problems: list[MemberProblem] = []
    for member, ids in received.items():
        error = errors.get(member)
        if list(ids) == expected and error is None:
            continue  # the common case, checked in one comparison
        counts = Counter(ids)
        missing = [i for i in expected if i not in counts]
        duplicates = sorted(i for i, n in counts.items() if n > 1)
        unexpected = sorted(i for i in counts if i not in wanted)
        out_of_order = [(a, b) for a, b in itertools.pairwise(ids) if b < a]
        if missing or duplicates or unexpected or out_of_order or error:
            problems.append(
                MemberProblem(member, missing, duplicates, out_of_order, unexpected, error)
            )
    for member, error in errors.items():
        if member not in received:
            problems.append(MemberProblem(member, missing=list(expected), stream_error=error))
    return CheckResult(len(received), len(expected), problems, list(send_failures))
