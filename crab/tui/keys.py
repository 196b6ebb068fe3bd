"""The key table: data, so the help screen and README are generated from
it. Keys use prompt_toolkit's names, and m-KEY for Alt+KEY (the terminal
sends Esc then KEY). Emacs/readline-like by default; the input line follows
vi keys too with `crab chat --vi`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Command(StrEnum):
    """What a key asks for (the reducers match on these, `Key(command)`)."""

    QUIT = "quit"
    HELP = "help"
    TOGGLE_SIGNUP = "toggle_signup"
    SIGN_IN_PROVIDER = "sign_in_provider"
    NEXT_CHAT = "next_chat"
    PREVIOUS_CHAT = "previous_chat"
    SCROLL_UP = "scroll_up"
    SCROLL_DOWN = "scroll_down"
    SCROLL_END = "scroll_end"
    SCROLL_TOP = "scroll_top"
    INVITES = "invites"
    SEARCH = "search"
    NAMES = "names"
    BACK = "back"
    SELECT_UP = "select_up"
    SELECT_DOWN = "select_down"
    ACCEPT = "accept"
    REJECT = "reject"
    DM_SELECTED = "dm_selected"
    INVITE_SELECTED = "invite_selected"
    OPEN_FOUND = "open_found"
    EDIT_LAST = "edit_last"
    SELECT_MESSAGES = "select_messages"
    REPLY = "reply"
    EDIT = "edit"
    DELETE = "delete"
    REACT = "react"
    COPY = "copy"
    JUMP = "jump"
    NEWLINE = "newline"  # the message line's own (crab/tui/app.py), no reducer
    HISTORY_BACK = "history_back"  # the message line's own too
    HISTORY_FORWARD = "history_forward"
    TOGGLE_SIDEBAR = "toggle_sidebar"
    OPEN_NUMBERED = "open_numbered"  # Alt+N: Key(command, number=N)
    CALL_ANSWER = "call_answer"
    CALL_END = "call_end"
    CALL_MUTE = "call_mute"
    CALL_CAMERA = "call_camera"


class Where(StrEnum):
    """Where a key works (shown in the help after each key)."""

    ANYWHERE = "anywhere"
    SIGN_IN = "sign-in"
    CHATS = "chats"
    INVITES = "invites"  # the invites panel has focus
    SEARCH = "search"  # the people search has focus
    FOUND = "search results"  # message search results (/search TEXT) have focus
    EMPTY_LINE = "empty message line"  # chats, the message line is empty
    MESSAGES = "message selected"  # a message of the open chat is selected
    HELP = "help"  # this help is open
    CALL = "call"  # a call rings for me, or I am in one


@dataclass(frozen=True, slots=True)
class KeyBinding:
    keys: tuple[str, ...]
    command: Command
    help: str
    where: Where


KEYS: tuple[KeyBinding, ...] = (
    KeyBinding(("c-q",), Command.QUIT, "quit crab", Where.ANYWHERE),
    KeyBinding(("f1",), Command.HELP, "show or hide this help", Where.ANYWHERE),
    KeyBinding(
        ("c-s",), Command.TOGGLE_SIGNUP, "switch between sign in and sign up", Where.SIGN_IN
    ),
    KeyBinding(
        ("c-o",),
        Command.SIGN_IN_PROVIDER,
        "sign in with the team's identity provider, if the server has one",
        Where.SIGN_IN,
    ),
    KeyBinding(("escape",), Command.BACK, "cancel signing in with the provider", Where.SIGN_IN),
    KeyBinding(("c-n", "m-right", "m-down"), Command.NEXT_CHAT, "open the next chat", Where.CHATS),
    KeyBinding(
        ("c-p", "m-left", "m-up"), Command.PREVIOUS_CHAT, "open the previous chat", Where.CHATS
    ),
    KeyBinding(
        tuple(f"m-{n}" for n in range(1, 10)),
        Command.OPEN_NUMBERED,
        "open chat 1..9 as numbered in the chat list",
        Where.CHATS,
    ),
    KeyBinding(("pageup",), Command.SCROLL_UP, "scroll back (loads older messages)", Where.CHATS),
    KeyBinding(("pagedown",), Command.SCROLL_DOWN, "scroll forward", Where.CHATS),
    KeyBinding(
        ("c-j", "m-enter"), Command.NEWLINE, "a new line in the message (Enter sends)", Where.CHATS
    ),
    # Not Alt+P/N: Esc is bound alone, so Esc+P is two keys. Up on a line
    # with text walks the same history; on an empty line it edits my last.
    KeyBinding(
        ("s-up",), Command.HISTORY_BACK, "the previous line I sent in this chat", Where.CHATS
    ),
    KeyBinding(("s-down",), Command.HISTORY_FORWARD, "the next line I sent here", Where.CHATS),
    KeyBinding(
        ("c-home",),
        Command.SCROLL_TOP,
        "to the oldest message loaded (again: older ones)",
        Where.CHATS,
    ),
    # Ctrl+End, not End: End moves to the end of the message line.
    KeyBinding(("c-end",), Command.SCROLL_END, "jump to the newest message", Where.CHATS),
    KeyBinding(("f2",), Command.INVITES, "show pending invites", Where.CHATS),
    KeyBinding(("f3",), Command.SEARCH, "find people as you type", Where.CHATS),
    KeyBinding(("f4",), Command.NAMES, "list the open chat's members", Where.CHATS),
    KeyBinding(("f6",), Command.TOGGLE_SIDEBAR, "hide or show the chat list", Where.CHATS),
    KeyBinding(("escape",), Command.BACK, "back to the message line", Where.CHATS),
    KeyBinding(
        ("f7",),
        Command.CALL_ANSWER,
        "answer the call ringing (or join the open chat's)",
        Where.CALL,
    ),
    KeyBinding(("f8",), Command.CALL_END, "decline the call ringing, or hang up", Where.CALL),
    KeyBinding(("f9",), Command.CALL_MUTE, "mute or unmute my microphone", Where.CALL),
    KeyBinding(("f10",), Command.CALL_CAMERA, "turn my camera off or on", Where.CALL),
    KeyBinding(("up",), Command.SELECT_UP, "select the previous entry", Where.INVITES),
    KeyBinding(("down",), Command.SELECT_DOWN, "select the next entry", Where.INVITES),
    KeyBinding(("c-a",), Command.ACCEPT, "accept the selected invite", Where.INVITES),
    KeyBinding(("c-r",), Command.REJECT, "reject the selected invite", Where.INVITES),
    KeyBinding(("up",), Command.SELECT_UP, "select the previous person", Where.SEARCH),
    KeyBinding(("down",), Command.SELECT_DOWN, "select the next person", Where.SEARCH),
    KeyBinding(("c-d",), Command.DM_SELECTED, "start a personal conversation", Where.SEARCH),
    KeyBinding(("c-o",), Command.INVITE_SELECTED, "invite to the open room", Where.SEARCH),
    KeyBinding(("up",), Command.SELECT_UP, "select the previous message", Where.FOUND),
    KeyBinding(("down",), Command.SELECT_DOWN, "select the next message", Where.FOUND),
    KeyBinding(
        ("enter",), Command.OPEN_FOUND, "open its chat at the selected message", Where.FOUND
    ),
    KeyBinding(("up",), Command.EDIT_LAST, "edit my last message", Where.EMPTY_LINE),
    KeyBinding(
        ("c-up", "f5"), Command.SELECT_MESSAGES, "select a message (Esc leaves)", Where.CHATS
    ),
    KeyBinding(("up",), Command.SELECT_UP, "select the previous message", Where.MESSAGES),
    KeyBinding(("down",), Command.SELECT_DOWN, "select the next message", Where.MESSAGES),
    KeyBinding(("r",), Command.REPLY, "reply to it (Esc cancels)", Where.MESSAGES),
    KeyBinding(("e",), Command.EDIT, "edit it (mine only; Esc cancels)", Where.MESSAGES),
    KeyBinding(("d",), Command.DELETE, "delete it (mine, or any as room owner)", Where.MESSAGES),
    KeyBinding(("+",), Command.REACT, "react to it: /react EMOJI toggles", Where.MESSAGES),
    KeyBinding(("y",), Command.COPY, "copy its text to the clipboard", Where.MESSAGES),
    KeyBinding(("enter",), Command.JUMP, "jump to the message it replies to", Where.MESSAGES),
    KeyBinding(("up",), Command.SELECT_UP, "scroll this help up a line (PgUp: a page)", Where.HELP),
    KeyBinding(("down",), Command.SELECT_DOWN, "scroll it down (PgDn: a page)", Where.HELP),
)


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str
    args: str
    help: str


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("create", "NAME", "create a room"),
    SlashCommand("invite", "USER", "invite someone to the open room"),
    SlashCommand("dm", "USER", "open the personal conversation with USER, or invite them to one"),
    SlashCommand("query", "USER", "the same as /dm (IRC's name)"),
    SlashCommand("invites", "", "show pending invites"),
    SlashCommand("accept", "[N]", "accept invite N (default: the first)"),
    SlashCommand("reject", "[N]", "reject invite N (default: the first)"),
    SlashCommand("leave", "", "leave the open chat"),
    SlashCommand("close", "", "close the open chat's view (you stay in it)"),
    SlashCommand("me", "ACTION", 'send an action, shown "* you ACTION"'),
    SlashCommand("mute", "", "no bell nor notification for the open chat (~ in the list)"),
    SlashCommand("unmute", "", "the open chat rings again"),
    SlashCommand("search", "TEXT", "search messages in my chats (Enter opens one)"),
    SlashCommand("people", "TEXT", "find people (as F3)"),
    SlashCommand("edit", "TEXT", "replace the text of my last message"),
    SlashCommand("delete", "", "delete my last message"),
    SlashCommand("react", "EMOJI", "toggle a reaction on the selected (or last) message"),
    SlashCommand("rename", "NAME", "rename the open room (its owner only)"),
    SlashCommand("topic", "[TEXT]", "set the open room's topic; empty clears it (owner only)"),
    SlashCommand("kick", "USER", "remove someone from the open room (its owner only)"),
    SlashCommand("names", "", "the open chat's members: * owner, ● online, ◐ away, ○ offline"),
    SlashCommand("nick", "NAME", "change your display name"),
    SlashCommand("password", "", "change your password (asks, masked); ends other sessions"),
    SlashCommand("bell", "MODE", "ring for other chats: all, mentions (default), off"),
    SlashCommand("call", "", "call the open chat's members (audio); joins a call going on"),
    SlashCommand("video", "", "the same with video"),
    SlashCommand("answer", "", "answer the call ringing, or join the open chat's (F7)"),
    SlashCommand("decline", "", "decline the call ringing (F8)"),
    SlashCommand("hangup", "", "leave the call (F8)"),
    SlashCommand("mic", "", "mute or unmute my microphone (F9)"),
    SlashCommand("camera", "", "turn my camera off or on (F10)"),
    SlashCommand("help", "", "show keys and commands"),
    SlashCommand("reconnect", "", "try to reach the server now, not after the wait"),
    SlashCommand("logout", "", "sign out on the server and forget this device"),
    SlashCommand("quit", "", "quit crab"),
)


_NAMES = {
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "escape": "Esc",
    "end": "End",
    "up": "Up",
    "down": "Down",
    "enter": "Enter",
    "left": "Left",
    "right": "Right",
    "s-up": "Shift+Up",
    "s-down": "Shift+Down",
}


def key_sequence(key: str) -> tuple[str, ...]:
    """The key presses prompt_toolkit sees for a key of the table: m-1 is
    Esc then 1."""
    return ("escape", key[2:]) if key.startswith("m-") else (key,)


def key_label(key: str) -> str:
    """prompt_toolkit's key name as a person writes it: c-q -> Ctrl+Q."""
    if key.startswith("m-"):
        return "Alt+" + _NAMES.get(key[2:], key[2:].upper())
    if key.startswith("c-"):
        rest = key[2:]
        return "Ctrl+" + _NAMES.get(rest, rest.upper())
    if key.startswith("f") and key[1:].isdigit():
        return key.upper()
    return _NAMES.get(key, key)


# The table in use: KEYS, or KEYS with config.toml's keys (crab/tui/config.py),
# set once by the app at its start so the help and hints name the keys bound.
_active: list[tuple[KeyBinding, ...]] = [KEYS]


def use_keys(table: tuple[KeyBinding, ...]) -> None:
    _active[0] = table


def active_keys() -> tuple[KeyBinding, ...]:
    return _active[0]


def keys_for(command: Command) -> tuple[str, ...]:
    """Every key bound to the command, in table order (views name them)."""
    return tuple(k for binding in _active[0] if binding.command is command for k in binding.keys)


def keys_label(keys: tuple[str, ...]) -> str:
    """ "Ctrl+N/Alt+Right"; a run of digits as one: "Alt+1..9"."""
    if len(keys) > 2 and all(k[-1].isdigit() for k in keys):
        return f"{key_label(keys[0])}..{keys[-1][-1]}"
    return "/".join(key_label(k) for k in keys)


def help_lines() -> list[str]:
    """The help screen, generated from the tables above."""
    lines = ["Keys"]
    for binding in _active[0]:
        keys = keys_label(binding.keys)
        lines.append(f"  {keys:<10} {binding.help} ({binding.where})")
    lines += ["", "Commands (type on the message line)"]
    for command in COMMANDS:
        usage = f"/{command.name} {command.args}".strip()
        lines.append(f"  {usage:<16} {command.help}")
    return lines
