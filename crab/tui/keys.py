"""The key table: data, so the help screen and README are generated from
it. Keys use prompt_toolkit's names. Emacs/readline-like by default; the
input line follows vi keys too with `crab chat --vi`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyBinding:
    keys: tuple[str, ...]
    command: str
    help: str
    where: str  # "anywhere", "chats", "invites", "search", "sign-in"


KEYS: tuple[KeyBinding, ...] = (
    KeyBinding(("c-q",), "quit", "quit crab", "anywhere"),
    KeyBinding(("f1",), "help", "show or hide this help", "anywhere"),
    KeyBinding(("c-s",), "toggle_signup", "switch between sign in and sign up", "sign-in"),
    KeyBinding(("c-n",), "next_chat", "open the next chat", "chats"),
    KeyBinding(("c-p",), "previous_chat", "open the previous chat", "chats"),
    KeyBinding(("pageup",), "scroll_up", "scroll back (loads older messages)", "chats"),
    KeyBinding(("pagedown",), "scroll_down", "scroll forward", "chats"),
    KeyBinding(("end",), "scroll_end", "jump to the newest message", "chats"),
    KeyBinding(("f2",), "invites", "show pending invites", "chats"),
    KeyBinding(("f3",), "search", "find people as you type", "chats"),
    KeyBinding(("escape",), "back", "back to the message line", "chats"),
    KeyBinding(("up",), "select_up", "select the previous entry", "invites"),
    KeyBinding(("down",), "select_down", "select the next entry", "invites"),
    KeyBinding(("c-a",), "accept", "accept the selected invite", "invites"),
    KeyBinding(("c-r",), "reject", "reject the selected invite", "invites"),
    KeyBinding(("up",), "select_up", "select the previous person", "search"),
    KeyBinding(("down",), "select_down", "select the next person", "search"),
    KeyBinding(("c-d",), "dm_selected", "start a personal conversation", "search"),
    KeyBinding(("c-o",), "invite_selected", "invite to the open room", "search"),
)


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str
    args: str
    help: str


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("create", "NAME", "create a room"),
    SlashCommand("invite", "USER", "invite someone to the open room"),
    SlashCommand("dm", "USER", "invite someone to a personal conversation"),
    SlashCommand("invites", "", "show pending invites"),
    SlashCommand("accept", "[N]", "accept invite N (default: the first)"),
    SlashCommand("reject", "[N]", "reject invite N (default: the first)"),
    SlashCommand("leave", "", "leave the open chat"),
    SlashCommand("search", "TEXT", "find people"),
    SlashCommand("help", "", "show keys and commands"),
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
}


def key_label(key: str) -> str:
    """prompt_toolkit's key name as a person writes it: c-q -> Ctrl+Q."""
    if key.startswith("c-"):
        return "Ctrl+" + key[2:].upper()
    if key.startswith("f") and key[1:].isdigit():
        return key.upper()
    return _NAMES.get(key, key)


def help_lines() -> list[str]:
    """The help screen, generated from the tables above."""
    lines = ["Keys"]
    for binding in KEYS:
        keys = " / ".join(key_label(k) for k in binding.keys)
        lines.append(f"  {keys:<10} {binding.help} ({binding.where})")
    lines += ["", "Commands (type on the message line)"]
    for command in COMMANDS:
        usage = f"/{command.name} {command.args}".strip()
        lines.append(f"  {usage:<16} {command.help}")
    return lines
