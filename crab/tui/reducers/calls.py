"""Calls in the client (docs/calls.md): /call and /video, answering (F7),
declining or hanging up (F8), mute (F9) and camera (F10), and the server's
Call frames that ring, silence (answered on another device) and end them.

This client is "in" a call only once it started or answered it here and the
server says so (`calling` marks the chat on its way); my media follows the
call's members (MediaJoin, MediaUpdate, MediaLeave effects)."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command, keys_for, keys_label
from crab.tui.reducers import Update
from crab.tui.reducers.live import ring
from crab.tui.state import AppState, CallItem, MyCall

COMMANDS = {"call", "video", "answer", "decline", "hangup", "mic", "camera"}


def reduce(state: AppState, action: a.Action) -> Update | None:
    match action:
        case a.CallUpdated(call=call):
            return _updated(state, call)
        case a.CallSignalArrived(call_id=call_id, from_id=from_id, sdp_type=kind, sdp=sdp):
            if state.my_call is None or state.my_call.call_id != call_id:
                return Update(state)  # not for a call of mine here: dropped
            return Update(state, (fx.MediaSignal(call_id, from_id, kind, sdp),))
        case a.CallRefused(message=message):
            return Update(replace(state, calling=0, notice=f"call: {message}"))
        case a.CallLinkChanged(call_id=call_id, user_id=user_id, state=link):
            mine = state.my_call
            if mine is None or mine.call_id != call_id:
                return Update(state)
            return Update(
                replace(state, my_call=replace(mine, links={**mine.links, user_id: link}))
            )
        case a.CallLevels(call_id=call_id, levels=levels, quality=quality):
            mine = state.my_call
            if mine is None or mine.call_id != call_id:
                return Update(state)
            return Update(replace(state, my_call=replace(mine, levels=levels, quality=quality)))
        case a.Key(command=Command.CALL_ANSWER):
            return command(state, "answer")
        case a.Key(command=Command.CALL_END):
            return command(state, "hangup" if state.my_call else "decline")
        case a.Key(command=Command.CALL_MUTE):
            return command(state, "mic")
        case a.Key(command=Command.CALL_CAMERA):
            return command(state, "camera")
    return None


def command(state: AppState, name: str) -> Update:
    """One of COMMANDS, typed on the message line (or its key)."""
    mine = state.my_call
    match name:
        case "call" | "video":
            if mine is not None:
                return _say(state, "you are in a call; F8 hangs up")
            chat = state.chat(state.active_chat)
            if chat is None:
                return _say(state, "open a chat first, then /call")
            going = state.call_in(chat.id)
            op = "accept" if going is not None else "start"
            frame = fx.CallFrame(op, chat.id, going.id if going else "", video=name == "video")
            return Update(replace(state, calling=chat.id, notice="calling…"), (frame,))
        case "answer":
            if mine is not None:
                return _say(state, "you are in a call already")
            call = state.ringing_for_me() or state.call_in(state.active_chat)
            if call is None:
                return _say(state, "no call is ringing")
            frame = fx.CallFrame("accept", call.chat_id, call.id)
            return Update(replace(state, calling=call.chat_id), (frame,))
        case "decline":
            call = state.ringing_for_me()
            if call is None:
                return _say(state, "no call is ringing")
            return Update(state, (fx.CallFrame("decline", call.chat_id, call.id),))
        case "hangup":
            if mine is None:
                return _say(state, "you are not in a call")
            frame = fx.CallFrame("leave", mine.chat_id, mine.call_id)
            return Update(replace(state, my_call=None, notice="hung up"), (frame, fx.MediaLeave()))
        case "mic":
            if mine is None:
                return _say(state, "you are not in a call")
            mine = replace(mine, muted=not mine.muted)
            said = "microphone muted" if mine.muted else "microphone on"
            controls = fx.MediaControls(mine.muted, mine.camera)
            return Update(replace(state, my_call=mine, notice=said), (controls,))
        case "camera":
            if mine is None:
                return _say(state, "you are not in a call")
            mine = replace(mine, camera=not mine.camera)
            said = "camera on" if mine.camera else "camera off"
            controls = fx.MediaControls(mine.muted, mine.camera)
            return Update(replace(state, my_call=mine, notice=said), (controls,))
    return Update(state)


def _updated(state: AppState, call: CallItem) -> Update:
    me = state.me.id if state.me else 0
    before = next((c for c in state.calls if c.id == call.id), None)
    others = tuple(c for c in state.calls if c.id != call.id)
    mine = state.my_call if state.my_call and state.my_call.call_id == call.id else None
    if call.stage == "ended":
        state = replace(state, calls=others)
        if mine is not None:
            why = f" ({call.end_reason})" if call.end_reason else ""
            return Update(
                replace(state, my_call=None, notice=f"call ended{why}"), (fx.MediaLeave(),)
            )
        return Update(state)
    state = replace(state, calls=(*others, call))
    if mine is not None:
        if not call.here:
            # Answered on another device, or dropped (the link came back too
            # late): the media stops here, and F7 takes the call back.
            said = (
                "the call moved to your other device"
                if call.state_of(me) == "joined"
                else (f"you were dropped from the call; {_key(Command.CALL_ANSWER)} rejoins")
            )
            return Update(replace(state, my_call=None, notice=said), (fx.MediaLeave(),))
        return Update(state, (fx.MediaUpdate(call),))
    if call.here and state.my_call is None:
        # The server has this client in the call: from its /call or answer,
        # or from before a restart or a reconnect (its media starts again).
        my_call = MyCall(call.id, call.chat_id, camera=call.video)
        return Update(replace(state, my_call=my_call, calling=0, notice=""), (fx.MediaJoin(call),))
    if call.state_of(me) == "ringing" and (before is None or before.state_of(me) != "ringing"):
        said = _ringing(state, call)
        rung = replace(state, ring=state.ring + 1, notice=said)
        # The bell (and a desktop notification) as for a personal message:
        # /bell off and a muted chat stay quiet, the banner shows anyway.
        if call.chat_id in state.muted:
            return Update(rung)
        return Update(rung, ring(state, "crab", said.partition(":")[0]))
    return Update(state)


def _ringing(state: AppState, call: CallItem) -> str:
    chat = state.chat(call.chat_id)
    where = f" in #{chat.name}" if chat is not None and chat.is_room else ""
    kind = "video call" if call.video else "call"
    return f"{call.started_by.username} is calling{where} ({kind}): F7 answers, F8 declines"


def _key(command: Command) -> str:
    return keys_label(keys_for(command))


def _say(state: AppState, text: str) -> Update:
    return Update(replace(state, notice=text))
