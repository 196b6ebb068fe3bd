"""What a server (or a hostile one) sends the client, garbage included:
frames for chats the client does not hold, ids at the edges of the wire's
range, a limit of any size. Each is ignored or bounded; nothing raises and
nothing is drawn wrong."""

from __future__ import annotations

from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.from_server import action
from crab.tui.reducers.app import reduce
from crab.tui.views.messages import visible_rows
from tests.helpers.tui import signed_in, submit

EDGES = (0, 1, 2**31, 2**63 - 1)


def test_frames_for_chats_and_people_the_client_does_not_hold_change_nothing_drawn() -> None:
    state = signed_in()
    before = visible_rows(state, 80, 20)
    for chat_id in (0, -1, 999_999, 2**63 - 1, -(2**63)):
        for frame in (
            pb.ServerFrame(typing=pb.TypingNotice(chat_id=chat_id, user=pb.User(id=chat_id))),
            pb.ServerFrame(read=pb.ReadReceipt(chat_id=chat_id, user_id=chat_id, last_read_id=7)),
        ):
            got = action(frame, me=1)
            assert got is not None
            state = reduce(state, got).state
    for user_id in EDGES:
        frame = pb.ServerFrame(presence=pb.Presence(user_id=user_id))  # state unspecified
        got = action(frame, me=1)
        if got is not None:
            state = reduce(state, got).state
    assert visible_rows(state, 80, 20) == before


def test_a_message_limit_of_any_size_is_taken_as_a_limit() -> None:
    for limit in (1, 2**32 - 1):
        state = reduce(signed_in(), a.LimitsKnown(limit)).state
        update = reduce(state, submit("hello"))
        sent = any(isinstance(e, fx.Send) for e in update.effects)
        assert sent == (limit >= 5), limit
