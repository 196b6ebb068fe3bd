"""The client's call rules, reducer by reducer (docs/calls.md): who rings,
what silences a ring, when my media starts and stops, what the keys do
with and without a call, and what a hostile server's call frames become."""

from __future__ import annotations

from datetime import UTC, datetime

from crab.proto.crab import v1 as pb
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.from_server import action
from crab.tui.keys import Command
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState, CallItem, CallPerson, Notify
from crab.tui.views.call_bar import call_bar
from tests.helpers.tui import ALICE, BOB, signed_in

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def call(
    stage: str = "ringing", alice: str = "ringing", bob: str = "joined", **kw: object
) -> CallItem:
    members = (CallPerson(ALICE, alice), CallPerson(BOB, bob))
    return CallItem("c1", 10, BOB, True, stage, members, **kw)  # type: ignore[arg-type]


def run(state: AppState, *actions: a.Action) -> tuple[AppState, list[fx.Effect]]:
    effects: list[fx.Effect] = []
    for act in actions:
        update = reduce(state, act)
        state = update.state
        # The notice's own timer is the status bar's business, not the call's.
        effects.extend(e for e in update.effects if not isinstance(e, fx.ExpireNotice))
    return state, effects


def test_a_call_for_me_rings_once_and_shows_in_the_bar() -> None:
    state, effects = run(signed_in(), a.CallUpdated(call()))
    assert effects == [fx.Bell()]
    assert state.ring == 1 and "bob is calling in #general" in state.notice
    assert "F7 answer" in "".join(t for _, t in call_bar(state))
    # The same call again (someone else answered in a group): no second bell.
    state, effects = run(state, a.CallUpdated(call()))
    assert state.ring == 1 and effects == []
    # A muted chat shows the ring without the bell; notifications when asked.
    quiet, effects = run(signed_in(muted=frozenset({10})), a.CallUpdated(call()))
    assert effects == [] and quiet.ringing_for_me() is not None
    _, effects = run(signed_in(notify=Notify.OSC777), a.CallUpdated(call()))
    assert effects == [fx.Bell(), fx.Notify("crab", "bob is calling in #general (video call)")]


def test_answering_here_starts_my_media_and_elsewhere_silences_the_ring() -> None:
    state, effects = run(signed_in(), a.CallUpdated(call()), a.Key(Command.CALL_ANSWER))
    assert effects[-1] == fx.CallFrame("accept", 10, "c1")
    joined = call("active", alice="joined", connected_at=T0, here=True)
    state, effects = run(state, a.CallUpdated(joined))
    assert state.my_call is not None and state.my_call.call_id == "c1"
    assert effects == [fx.MediaJoin(joined)]
    # On another device instead: no media here, no ring left, the bar says so.
    elsewhere = call("active", alice="joined", connected_at=T0)
    other, effects = run(signed_in(), a.CallUpdated(call()), a.CallUpdated(elsewhere))
    assert other.my_call is None and not any(isinstance(e, fx.MediaJoin) for e in effects)
    assert other.ringing_for_me() is None
    assert "another device" in "".join(t for _, t in call_bar(other))


def test_the_call_ending_stops_my_media_and_my_moving_away_too() -> None:
    joined = call("active", alice="joined", connected_at=T0, here=True)
    state, _ = run(signed_in(calling=10), a.CallUpdated(joined))
    ended = call("ended", alice="left", bob="left", end_reason="hung up")
    after, effects = run(state, a.CallUpdated(ended))
    assert after.my_call is None and after.calls == () and fx.MediaLeave() in effects
    assert "call ended (hung up)" in after.notice
    # Answered on my phone meanwhile: the media stops here.
    moved, effects = run(state, a.CallUpdated(call("active", alice="joined", connected_at=T0)))
    assert moved.my_call is None and fx.MediaLeave() in effects
    assert "moved to your other device" in moved.notice
    # Dropped (my link came back too late): said, with the key that rejoins.
    dropped, effects = run(state, a.CallUpdated(call("active", alice="left", connected_at=T0)))
    assert dropped.my_call is None and fx.MediaLeave() in effects
    assert "dropped from the call; F7 rejoins" in dropped.notice
    # A client that restarts while the server has it in a call: media again.
    again, effects = run(signed_in(), a.CallUpdated(joined))
    assert again.my_call is not None and effects == [fx.MediaJoin(joined)]


def test_keys_without_a_call_change_nothing_but_say_so() -> None:
    for command, said in (
        (Command.CALL_END, "no call is ringing"),
        (Command.CALL_MUTE, "not in a call"),
        (Command.CALL_CAMERA, "not in a call"),
        (Command.CALL_ANSWER, "no call is ringing"),
    ):
        state, effects = run(signed_in(), a.Key(command))
        assert said in state.notice and effects == []


def test_mute_camera_and_hang_up_in_a_call() -> None:
    joined = call("active", alice="joined", connected_at=T0, here=True)
    state, _ = run(signed_in(calling=10), a.CallUpdated(joined))
    state, effects = run(state, a.Key(Command.CALL_MUTE), a.Key(Command.CALL_CAMERA))
    assert state.my_call is not None and state.my_call.muted and not state.my_call.camera
    assert effects == [fx.MediaControls(True, True), fx.MediaControls(True, False)]
    bar = "".join(t for _, t in call_bar(state, T0.replace(minute=2, second=5)))
    assert "2:05" in bar and "muted" in bar and "camera off" in bar
    state, effects = run(state, a.Key(Command.CALL_END))
    assert state.my_call is None
    assert effects == [fx.CallFrame("leave", 10, "c1"), fx.MediaLeave()]


def test_a_signal_for_a_call_not_mine_here_is_dropped() -> None:
    state, effects = run(signed_in(), a.CallSignalArrived("c1", 2, "offer", "v=0"))
    assert effects == []
    joined = call("active", alice="joined", connected_at=T0, here=True)
    state, _ = run(signed_in(calling=10), a.CallUpdated(joined))
    _, effects = run(state, a.CallSignalArrived("other", 2, "offer", "v=0"))
    assert effects == []
    _, effects = run(state, a.CallSignalArrived("c1", 2, "offer", "v=0"))
    assert effects == [fx.MediaSignal("c1", 2, "offer", "v=0")]


def test_what_a_hostile_server_sends_about_calls() -> None:
    # An SDP past the cap, or of a type no server sends: dropped.
    big = pb.ServerFrame(
        call_signal=pb.CallSignal(call_id="c1", sdp_type="offer", sdp="a" * 20_000)
    )
    odd = pb.ServerFrame(call_signal=pb.CallSignal(call_id="c1", sdp_type="pranswer", sdp="v=0"))
    assert action(big, 1) is None and action(odd, 1) is None
    # Unknown states, thousands of members, piles of ICE servers: bounded.
    members = [pb.CallMember(user=pb.User(id=i), state=pb.CallMemberState(99)) for i in range(5000)]
    ice = [pb.IceServer(urls=["turn:x"] * 50) for _ in range(100)]
    frame = pb.ServerFrame(
        call=pb.Call(id="c", status=pb.CallStatus(42), members=members, ice_servers=ice)
    )
    got = action(frame, 1)
    assert isinstance(got, a.CallUpdated)
    assert got.call.stage == "ended" and len(got.call.members) == 64
    assert {m.state for m in got.call.members} == {"left"}
    assert len(got.call.ice) == 8 and all(len(s.urls) == 4 for s in got.call.ice)
    # None of it rings nor breaks the state.
    state, _ = run(signed_in(), got)
    assert state.calls == () and state.ring == 0
