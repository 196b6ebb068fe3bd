"""Issue 13's habits, part 2, in pure code: config.toml, notifications and
/mute, the input history file, /me and /close, the mouse wheel, seconds."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from crab.cli import main
from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.config import MAX_CONFIG_BYTES, ChatConfig, ConfigError, key_table, load_config
from crab.tui.keys import KEYS, Command, help_lines, keys_for, use_keys
from crab.tui.notify import MAX_BODY, inert, sequence
from crab.tui.reducers.app import reduce
from crab.tui.saved import (
    MAX_HISTORY_CHATS,
    MAX_HISTORY_LINES,
    InputHistoryFile,
    SettingsFile,
)
from crab.tui.state import Bell, ChatItem, History, Notify
from crab.tui.views.messages import visible_rows
from crab.tui.views.panels import sidebar
from tests.helpers.tui import ALICE, BOB, line, rows_text, signed_in, submit
from tests.unit.tui.test_changes import asked

# ---- config.toml ---------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "config.toml").write_text(text)
    return tmp_path


def test_no_config_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == ChatConfig()


def test_a_config_file_sets_each_documented_default(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            'bell = "off"\nnotify = "osc777"\nseconds = true\nsidebar_width = 30\n'
            'mouse = false\n[keys]\nnext_chat = ["s-down", "f7"]\nprevious_chat = "f8"\n',
        )
    )
    assert config == ChatConfig(
        bell=Bell.OFF,
        notify=Notify.OSC777,
        seconds=True,
        sidebar_width=30,
        mouse=False,
        keys={Command.NEXT_CHAT: ("s-down", "f7"), Command.PREVIOUS_CHAT: ("f8",)},
    )
    table = key_table(config)
    assert [b.keys for b in table if b.command is Command.NEXT_CHAT] == [("s-down", "f7")]
    # The keys the file gave next_chat and previous_chat left the commands
    # that had them (a binding left with no key is gone).
    taken = {"s-down", "f7", "f8"}
    others = [b for b in table if b.command not in (Command.NEXT_CHAT, Command.PREVIOUS_CHAT)]
    assert not any(taken & set(b.keys) for b in others)
    assert {b.command for b in KEYS} - {b.command for b in table} == {
        Command.HISTORY_FORWARD,
        Command.CALL_ANSWER,
        Command.CALL_END,
    }
    try:
        use_keys(table)
        assert keys_for(Command.NEXT_CHAT) == ("s-down", "f7")
        assert any(row.startswith("  Shift+Down/F7 open the next chat") for row in help_lines())
    finally:
        use_keys(KEYS)
    assert keys_for(Command.NEXT_CHAT) == ("c-n", "m-right", "m-down")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bell = 'loud'", "bell must be one of all, mentions, off, not 'loud'"),
        ("notify = 1", "notify must be one of off, osc777, osc9"),
        ("colour = 'red'", "unknown setting 'colour'"),
        ("seconds = 'yes'", "seconds must be true or false"),
        ("sidebar_width = 500", "sidebar_width must be a number from 10 to 60"),
        ("sidebar_width = true", "sidebar_width must be a number from 10 to 60"),
        ("[keys]\nfly = 'c-f'", "[keys]: no command 'fly'"),
        ("[keys]\nquit = 'c-bogus'", "[keys] quit: unknown key 'c-bogus'"),
        ("[keys]\nquit = []", "[keys] quit must be a key or a list of 1 to 4 keys"),
        ("[keys]\nquit = [1]", "[keys] quit must be a key or a list of 1 to 4 keys"),
        ("keys = 3", "[keys] must be a table"),
        ("bell = ", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_one_clear_line(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    message = str(error.value)
    assert says in message and "\n" not in message
    assert message.startswith(str(tmp_path / "config.toml"))


def test_a_config_file_too_large_or_not_text_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        load_config(tmp_path)
    (tmp_path / "config.toml").write_bytes(b"bell = '\xff\xfe'")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path)


def test_crab_chat_with_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    write(tmp_path, "[keys]\nquit = 'c-bogus'\n")
    result = CliRunner().invoke(main, ["chat", "--config-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0  # one line, no traceback
    assert "crab chat:" in result.output and "unknown key 'c-bogus'" in result.output


# ---- notifications and /mute --------------------------------------------------------


def test_notification_text_is_inert_and_short() -> None:
    nasty = "hi\x1b]52;c;ZXZpbA==\x07 there;\x9c\u202e\u2028x\tend" + "y" * 500
    text = inert(nasty, MAX_BODY)
    assert len(text) == MAX_BODY and text.endswith("…")
    assert all(ch.isprintable() for ch in text) and ";" not in text
    assert text.startswith("hi]52,c,ZXZpbA== there, x end")
    seq = sequence(Notify.OSC777, "#gen;eral\x07", nasty)
    assert seq.startswith("\x1b]777;notify;#gen,eral;hi]52,c,")
    assert seq.count("\x1b") == 1 and seq.count("\x07") == 1 and seq.count(";") == 3
    assert sequence(Notify.OSC9, "#general", "bob: hi") == "\x1b]9;#general: bob: hi\x07"
    assert sequence(Notify.OFF, "t", "b") == ""


def test_what_rings_notifies_when_asked_and_a_muted_chat_stays_silent() -> None:
    dm = ChatItem(12, False, "bob")
    state = signed_in(chats=(*signed_in().chats, dm), notify=Notify.OSC9)
    said = line(12, 1, BOB, "/me waves")
    assert reduce(state, a.MessageArrived(said)).effects == (
        fx.Bell(),
        fx.Notify("bob", "* bob waves"),
    )
    # Notifications off (the default): the bell alone, as before.
    quiet = replace(state, notify=Notify.OFF)
    assert reduce(quiet, a.MessageArrived(said)).effects == (fx.Bell(),)
    # A room message without a mention does not ring by default, nor notify.
    assert reduce(state, a.MessageArrived(line(11, 1))).effects == ()
    loud = replace(state, bell=Bell.ALL)
    assert reduce(loud, a.MessageArrived(line(11, 1))).effects == (
        fx.Bell(),
        fx.Notify("#random", "bob: hi"),
    )
    # Muted: nothing, whatever the bell.
    muted = replace(loud, muted=frozenset({11, 12}))
    assert reduce(muted, a.MessageArrived(line(11, 2))).effects == ()
    assert reduce(muted, a.MessageArrived(line(12, 2))).effects == ()
    assert reduce(muted, a.MessageArrived(line(12, 2))).state.chat(12).unread == 1  # type: ignore[union-attr]


def test_mute_and_unmute_the_open_chat_are_saved_and_shown() -> None:
    state = signed_in()
    update = reduce(state, submit("/mute"))
    assert update.state.muted == {10} and asked(update) == (fx.SaveMuted((10,)),)
    assert "#general muted" in update.state.notice
    assert " ~# general" not in rows_text([sidebar(update.state)])[0]
    assert "~# general" in rows_text([sidebar(update.state)])[0]
    again = reduce(update.state, submit("/mute"))
    assert asked(again) == ()  # nothing changed, nothing written
    back = reduce(update.state, submit("/unmute"))
    assert back.state.muted == frozenset() and asked(back) == (fx.SaveMuted(()),)
    closed = replace(state, active_chat=None)
    assert reduce(closed, submit("/mute")).state.notice == "no chat open"


def test_muted_chats_are_kept_per_server(tmp_path: Path) -> None:
    settings = SettingsFile(tmp_path)
    settings.save_bell("off")
    settings.save_muted("a:1", (3, 1))
    settings.save_muted("b:2", (7,))
    assert settings.muted("a:1") == {1, 3} and settings.muted("b:2") == {7}
    assert settings.muted("c:3") == frozenset() and settings.bell() == "off"
    settings.path.write_text('{"muted": {"a:1": ["x", 2, null]}}')
    assert settings.muted("a:1") == {2}
    settings.path.write_text('{"muted": 5}')
    assert settings.muted("a:1") == frozenset()


# ---- input history ---------------------------------------------------------------


def test_the_input_history_file_is_bounded_private_and_per_chat(tmp_path: Path) -> None:
    history = InputHistoryFile(tmp_path)
    for i in range(MAX_HISTORY_LINES + 5):
        history.add("s:1", 10, f"line {i}")
    history.add("s:1", 11, "elsewhere")
    history.add("s:1", 11, "x" * 5000)  # too long to keep across restarts
    history.add("t:2", 10, "other server")
    lines = history.load("s:1")
    assert lines[10] == [f"line {i}" for i in range(5, MAX_HISTORY_LINES + 5)]
    assert lines[11] == ["elsewhere"]
    assert history.load("t:2") == {10: ["other server"]}
    assert stat.S_IMODE(os.stat(history.path).st_mode) == 0o600
    for chat in range(MAX_HISTORY_CHATS + 10):
        history.add("s:1", 1000 + chat, "hi")
    kept = history.load("s:1")
    assert len(kept) == MAX_HISTORY_CHATS and 10 not in kept  # the least recently used left
    history.path.write_text('{"s:1": {"5": ["ok", 3], "x": ["no"]}}')
    assert history.load("s:1") == {5: ["ok"]}
    history.path.write_text("[]")
    assert history.load("s:1") == {}


# ---- /me, /close ---------------------------------------------------------------------


def test_me_sends_an_action_drawn_with_a_star() -> None:
    update = reduce(signed_in(), submit("/me waves hello"))
    (effect,) = update.effects
    assert isinstance(effect, fx.Send) and effect.line.text == "/me waves hello"
    assert reduce(signed_in(), submit("/me")).state.notice == "usage: /me ACTION"
    history = History(lines=(line(10, 1, BOB, "/me waves"), line(10, 2, ALICE, "/mean")))
    shown = rows_text(visible_rows(signed_in(histories={10: history}), 80, 10))
    assert any(row.endswith("* bob waves") and "bob " not in row[:-10] for row in shown)
    assert any(row.endswith("/mean") and "alice" in row for row in shown)


def test_close_leaves_no_chat_open_but_keeps_the_chat() -> None:
    state = replace(signed_in(), scroll=3, selected=1)
    update = reduce(state, submit("/close"))
    assert update.state.active_chat is None and asked(update) == ()
    assert update.state.chats == state.chats and update.state.scroll == 0
    assert "No chat open" in rows_text(visible_rows(update.state, 80, 10))[0]
    assert reduce(update.state, submit("/close")).state.notice == "no chat open"
    # A message there now counts as unread.
    after = reduce(update.state, a.MessageArrived(line(10, 3))).state
    assert after.chat(10).unread == 1  # type: ignore[union-attr]
    # The list reloaded (a reconnect) opens no chat; opening one clears that.
    reloaded = reduce(after, a.ChatsLoaded(after.chats, (), ())).state
    assert reloaded.active_chat is None
    opened = reduce(reloaded, a.OpenChat(11)).state
    assert opened.active_chat == 11 and not opened.closed


# ---- the mouse wheel, seconds --------------------------------------------------------


def test_the_wheel_scrolls_a_few_messages_and_stops_at_both_ends() -> None:
    lines = tuple(line(10, i) for i in range(1, 41))
    state = signed_in(histories={10: History(lines=lines, has_more=False)}, pane=(80, 10))
    up = reduce(state, a.Wheel(up=True)).state
    assert up.scroll == 3
    top = up
    for _ in range(30):
        top = reduce(top, a.Wheel(up=True)).state
    assert 0 < top.scroll < 40
    assert rows_text(visible_rows(top, 80, 10))[0] == "This is the beginning of the chat."
    down = reduce(up, a.Wheel(up=False)).state
    assert down.scroll == 0
    assert reduce(down, a.Wheel(up=False)).state.scroll == 0


def test_the_wheel_near_the_top_loads_older_messages() -> None:
    lines = tuple(line(10, i) for i in range(100, 110))
    state = signed_in(histories={10: History(lines=lines, has_more=True)}, pane=(80, 5))
    update = reduce(state, a.Wheel(up=True))
    assert update.effects == (fx.LoadHistory(10, 100),)


def test_timestamps_show_seconds_when_asked() -> None:
    plain = rows_text(visible_rows(signed_in(), 80, 10))
    timed = rows_text(visible_rows(signed_in(seconds=True), 80, 10))
    assert any(row.startswith("10:00 bob") or ":00 bob" in row for row in plain)
    stamp = next(row for row in timed if row.endswith("hi"))
    hh_mm_ss = stamp.split(" ")[0]
    assert len(hh_mm_ss) == 8 and hh_mm_ss.count(":") == 2
    # The text still starts in one column for every row.
    assert stamp.index("hi") == 9 + 12 + 1
