"""The call bar: one row above the chat while a call rings for me, while I
am in one, or while one goes on in the open chat. It says who is in it, who
is speaking (an audio level each), how long it has lasted, the connection
quality, and which keys do what."""

from __future__ import annotations

from datetime import UTC, datetime

from prompt_toolkit.formatted_text import StyleAndTextTuples

from crab.tui.keys import Command, keys_for, keys_label
from crab.tui.state import AppState, CallItem, MyCall

LEVEL_BARS = " ▁▂▃▄▅▆▇█"


def shown(state: AppState) -> bool:
    return bool(state.my_call or state.ringing_for_me() or state.call_in(state.active_chat))


def call_bar(state: AppState, now: datetime | None = None) -> StyleAndTextTuples:
    now = now or datetime.now(UTC)
    me = state.me.id if state.me else 0
    mine = state.my_call
    if mine is not None:
        call = next((c for c in state.calls if c.id == mine.call_id), None)
        if call is not None:
            return _in_call(state, call, mine, me, now)
    ringing = state.ringing_for_me()
    if ringing is not None:
        kind = "video call" if ringing.video else "call"
        where = _where(state, ringing)
        return [
            ("class:warn", f" 📞 {ringing.started_by.username} is calling{where} ({kind}) "),
            (
                "class:hint",
                f"  {_key(Command.CALL_ANSWER)} answer  {_key(Command.CALL_END)} decline",
            ),
        ]
    going = state.call_in(state.active_chat)
    if going is None:
        return []
    names = ", ".join(p.username for p in going.joined()) or going.started_by.username
    if going.state_of(me) == "joined":
        return [("class:hint", f" 📞 in this call on another device ({names})")]
    return [
        ("class:hint", f" 📞 a call is going on here: {names}  {_key(Command.CALL_ANSWER)} joins")
    ]


def _in_call(
    state: AppState, call: CallItem, mine: MyCall, me: int, now: datetime
) -> StyleAndTextTuples:
    out: StyleAndTextTuples = [("class:ok", f" 📞{_where(state, call)} ")]
    if call.connected_at is not None:
        seconds = max(0, int((now - call.connected_at).total_seconds()))
        out.append(("", f" {seconds // 60}:{seconds % 60:02d} "))
    else:
        out.append(("class:hint", " ringing… "))
    for person in call.joined():
        if person.id == me:
            continue
        link = mine.links.get(person.id, "connecting")
        level = mine.levels.get(person.id, 0.0)
        bar = LEVEL_BARS[min(len(LEVEL_BARS) - 1, int(level * (len(LEVEL_BARS) - 1) * 3))]
        style = "class:mention" if level > 0.05 else ""
        out.append((style, f" {person.username}{bar}"))
        if link != "connected":
            out.append(("class:hint", f"({link})"))
        elif mine.quality.get(person.id) in ("fair", "poor"):
            out.append(("class:warn", f"({mine.quality[person.id]})"))
    if mine.muted:
        out.append(("class:warn", " muted "))
    if call.video and not mine.camera:
        out.append(("class:hint", " camera off"))
    out.append(
        (
            "class:hint",
            f"  {_key(Command.CALL_END)} hang up  {_key(Command.CALL_MUTE)} mic  "
            f"{_key(Command.CALL_CAMERA)} camera",
        )
    )
    return out


def _where(state: AppState, call: CallItem) -> str:
    chat = state.chat(call.chat_id)
    if chat is None:
        return ""
    return f" #{chat.name}" if chat.is_room else f" {chat.name}"


def _key(command: Command) -> str:
    return keys_label(keys_for(command))
