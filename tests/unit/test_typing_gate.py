"""One session's typing notices: members only, one per interval per chat."""

from __future__ import annotations

from crab.core.services.typing import TypingGate


def test_a_member_may_say_it_types_once_per_interval_per_chat() -> None:
    now = [0.0]
    gate = TypingGate(2.0, clock=lambda: now[0])
    chats = {7, 8}
    assert gate.take(7, chats)
    assert not gate.take(7, chats)  # within the interval
    assert gate.take(8, chats)  # another chat: its own interval
    now[0] = 1.9
    assert not gate.take(7, chats)
    now[0] = 2.0
    assert gate.take(7, chats)


def test_chats_the_session_is_not_in_are_refused() -> None:
    gate = TypingGate(2.0, clock=lambda: 0.0)
    for chat_id in (0, -1, 2**63 - 1, 9):
        assert not gate.take(chat_id, {7})
