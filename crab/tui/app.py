"""`crab chat`: the prompt_toolkit application. Wires the store, the
effects runner and the views; keys come from the key table."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import ssl
import string
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_toolkit.application import Application
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.filters import Condition, has_focus
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import DynamicContainer, Window
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.widgets import TextArea

from crab import start_up
from crab.tui.config import ChatConfig, key_table
from crab.tui.keys import COMMANDS, KEYS, Command, Where, key_sequence, use_keys
from crab.tui.saved import InputHistoryFile, SessionFile, SettingsFile
from crab.tui.state import AppState, Bell, Connection, Focus, Link, Order, Person, Screen
from crab.tui.store import Store
from crab.tui.views.layout import STYLE, SignInForm, build_layout
from crab.tui.views.messages import Mouse

if TYPE_CHECKING:
    from crab.tui.actions import Submit
    from crab.tui.effects import Effect
    from crab.tui.runner import Runner
    from crab.tui.views.video import VideoPane

# Before the first paint this module needs only prompt_toolkit, the state and
# the views. The rest (actions, reducers, effects, and the I/O side with
# grpclib and the generated API) is imported just after it: see `run`.

USER_COMMANDS = {"invite", "dm", "query", "kick"}
INPUT_LINES = 6  # the message line grows to this many rows, then scrolls
IDLE_SECONDS = 300.0  # without a key press this long, others see me away
NICK_CHARS = string.ascii_letters + string.digits + "_.-"  # what a nick at the cursor holds


class ChatCompleter(Completer):
    """Slash commands, then usernames crab has seen (members, search, invites)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _people(self) -> set[str]:
        state = self._store.state
        names = {p.username for h in state.histories.values() for p in h.members}
        names |= {p.username for p in state.search.results}
        names |= {i.inviter.username for i in state.invites}
        names |= {c.name for c in state.chats if not c.is_room}
        if state.me:
            names.discard(state.me.username)
        return names

    def _members(self) -> list[str]:
        """The open chat's members but me: whom Tab completes in text."""
        state = self._store.state
        me = state.me.username if state.me else None
        members = state.history(state.active_chat).members
        return sorted({p.username for p in members if p.username != me})

    def get_completions(self, document: Document, complete_event: Any) -> Iterable[Completion]:
        text = document.text_before_cursor
        if self._store.state.asking is not None:
            return
        if not text.startswith("/"):
            # A nick in text: only on Tab, never a menu popping up while typing.
            if complete_event.completion_requested:
                yield from self._nicks(text)
            return
        name, space, arg = text[1:].partition(" ")
        if not space:
            for command in COMMANDS:
                if command.name.startswith(name):
                    shown = f"/{command.name} {command.args}".strip()
                    yield Completion(
                        command.name, -len(name), display=shown, display_meta=command.help
                    )
        elif name in USER_COMMANDS:
            for person in sorted(self._people()):
                if person.startswith(arg.lstrip("@")):
                    yield Completion(person, -len(arg))

    def _nicks(self, text: str) -> Iterable[Completion]:
        """The word at the cursor (with or without @) completed to a member;
        at the start of the line IRC's "nick: "."""
        word = text[len(text.rstrip(NICK_CHARS)) :] if text else ""
        start = text[: len(text) - len(word)]
        at = start.endswith("@")
        if at:
            start = start[:-1]
        if not word and not at:
            return
        first = not start.strip()
        for name in self._members():
            if name.lower().startswith(word.lower()):
                done = f"@{name}" if at else (f"{name}: " if first else name)
                yield Completion(done, -len(word) - at, display=name)


VIDEO_SHARE = 0.45  # of the terminal's rows, for the call's pictures
VIDEO_MIN_ROWS = 6
VIDEO_GC_THRESHOLDS = (10_000, 20, 100)


def truecolor() -> bool:
    """24-bit colour, as terminals that have it say (COLORTERM)."""
    return os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")


class ChatApp:
    def __init__(
        self,
        server: str,
        config_dir: Path,
        tls: ssl.SSLContext | None = None,
        vi: bool = False,
        bell: str | None = None,
        order: str | None = None,
        input: Input | None = None,
        output: Output | None = None,
        state: AppState | None = None,
        idle: float = IDLE_SECONDS,
        config: ChatConfig | None = None,
        mouse: bool | None = None,
    ) -> None:
        """`state`: start from it instead of the sign-in form or the saved
        session (`crab bench chat` opens a chat of 10,000 messages so).
        `bell`: all, mentions or off for this run; None: as /bell last saved
        it (else mentions). `order`: the chat list's, saved for next time;
        None: as last saved (else fixed).
        `idle`: seconds without a key press before I am reported away.
        `config`: config.toml's settings (crab/tui/config.py); `mouse`
        (--mouse/--no-mouse) overrides its mouse."""
        host, _, port = server.rpartition(":")
        config = config or ChatConfig()
        self._keys = key_table(config)
        use_keys(self._keys)  # the help and hints name the keys bound
        sessions = SessionFile(config_dir)
        self._settings = SettingsFile(config_dir)
        start = state or AppState(
            server=server,
            bell=_bell(bell, self._settings, config),
            order=_order(order, self._settings),
            notify=config.notify,
            muted=self._settings.muted(server),
            seconds=config.seconds,
            sidebar_width=config.sidebar_width,
        )
        saved = sessions.load(server) if state is None else None
        if saved is not None:
            # Straight into the chats; the runner checks the session meanwhile.
            me = Person(0, saved.username, saved.username)
            start = replace(
                start, screen=Screen.CHATS, me=me, connection=Connection(Link.CONNECTING)
            )
        self.store = Store(start)
        self._server = server
        self._address = (host or "127.0.0.1", int(port), tls)
        self._sessions = sessions
        # The I/O side arrives just after the first paint (see `run`); effects
        # asked for before then wait here.
        self.runner: Runner | None = None
        self.started = asyncio.Event()  # set once the runner is up
        self._waiting: list[Effect] = []
        # Input history per chat (Up on a line with text, Shift+Up/Down),
        # kept across restarts: the buffer holds the open chat's.
        self._history_file = InputHistoryFile(config_dir)
        self._sent_lines = self._history_file.load(server)
        self._histories: dict[int, InMemoryHistory] = {}
        self._history_chat = self.store.state.active_chat
        # Multi-line: a paste keeps its lines, all of them shown (up to
        # INPUT_LINES, then it scrolls) and editable before Enter sends;
        # Ctrl+J or Alt+Enter starts a new line.
        self.message_line = TextArea(
            multiline=True,
            height=Dimension(min=1, max=INPUT_LINES),
            dont_extend_height=True,
            completer=ChatCompleter(self.store),
            complete_while_typing=True,
            history=self._chat_history(self._history_chat),
            accept_handler=self._submit,
            # Masked while /password asks; such answers never enter the history.
            password=Condition(lambda: self.store.state.asking is not None),
        )
        self.message_line.buffer.on_text_changed += self._typed
        self.sign_in = SignInForm(
            lambda: self.store.state,
            self._sign_in,
            lambda: self._key(Command.SIGN_IN_PROVIDER),
        )
        self._pane = self.store.state.pane  # the message pane's size, as last drawn
        # The call's video pane, made with the first picture (numpy and the
        # calls extra are imported then, not at start).
        self._video: VideoPane | None = None
        self._video_shown: Window | None = None
        self.app: Application[None] = Application(
            layout=build_layout(
                lambda: self.store.state,
                self.sign_in,
                self.message_line,
                self._sized,
                Mouse(self._clicked_chat, self._wheel),
                video=DynamicContainer(self._video_window),
            ),
            key_bindings=self._key_bindings(),
            style=STYLE,
            include_default_pygments_style=False,  # no syntax highlighting here
            full_screen=True,
            editing_mode=EditingMode.VI if vi else EditingMode.EMACS,
            mouse_support=config.mouse if mouse is None else mouse,
            input=input,
            output=output,
            # Call video in 24-bit colour where the terminal says it has it.
            color_depth=ColorDepth.DEPTH_24_BIT if truecolor() else None,
        )
        self._devices = (config.mic, config.speaker, config.camera)
        self._idle = idle
        self._last_key = time.monotonic()
        self.away = False
        self.app.key_processor.before_key_press += self._pressed
        self.store.on_effect(self._effect)
        self.store.subscribe(self._changed)
        self._screen = self.store.state.screen
        self._focus = self.store.state.focus
        self._fill_serial = self.store.state.fill_serial

    # ---- wiring ----------------------------------------------------------

    def _effect(self, effect: Effect) -> None:
        if self.runner is None:
            self._waiting.append(effect)
        else:
            self.runner(effect)

    async def _connect(self) -> None:
        """Starts the I/O side. Imported here, after the first paint: grpclib
        and the generated API code take longer to import than the screen
        takes to draw."""
        from crab.client.connection import CrabClient
        from crab.tui.runner import Runner

        self.store.load_reducer()
        # The client's last import: the collector back on, the client frozen
        # out of its full passes (the start-up contract, crab/start_up.py).
        start_up.loaded(freeze=True)

        host, port, tls = self._address
        self.runner = Runner(
            self.store,
            CrabClient(host, port, tls=tls),
            self._sessions,
            self._server,
            on_quit=self._quit,
            on_bell=self.app.output.bell,
            settings=self._settings,
            on_notify=self._notify,
            on_terminal=self._write_raw,
            devices=self._devices,
            on_video=self._video_frame,
        )
        for effect in self._waiting:
            self.runner(effect)
        self._waiting.clear()
        from crab.tui import actions as a

        self.store.dispatch(a.Started())  # the sign-in screen asks how one signs in
        self.started.set()
        self.app.create_background_task(self._watch_idle())
        await self.runner.resume_saved()

    def _write_raw(self, sequence: str) -> None:
        self.app.output.write_raw(sequence)
        self.app.output.flush()

    def _notify(self, title: str, body: str) -> None:
        from crab.tui.notify import sequence

        text = sequence(self.store.state.notify, title, body)
        if text:
            self.app.output.write_raw(text)
            self.app.output.flush()

    def _pressed(self, _: Any) -> None:
        """Any key: I am here (back from away, if I was)."""
        self._last_key = time.monotonic()
        if self.away and self.runner is not None:
            from crab.tui import effects as fx

            self.away = False
            self.runner(fx.ReportActivity(away=False))

    async def _watch_idle(self) -> None:
        from crab.tui import effects as fx

        while True:
            quiet = time.monotonic() - self._last_key
            if not self.away and quiet >= self._idle and self.runner is not None:
                self.away = True
                self.runner(fx.ReportActivity(away=True))
            await asyncio.sleep(max(0.05, min(30.0, self._idle - quiet if not self.away else 30.0)))

    # ---- call video ------------------------------------------------------

    def _video_window(self) -> Window:
        return self._video_shown or Window(height=0)

    def _video_frame(self, user_id: int, frame: Any) -> None:
        """A picture from someone in my call (the media's own callback, on
        the loop): into the pane, with my own camera's newest, then a redraw."""
        if self._video is None:
            from crab.tui.views.video import VideoPane

            self._video = VideoPane(truecolor=self.app.color_depth is ColorDepth.DEPTH_24_BIT)
            # Each drawn frame leaves prompt_toolkit's screen in a reference
            # cycle: with the default thresholds, collections of them paused
            # frames past the draw budget (BENCHMARKS.md, "call").
            gc.set_threshold(*VIDEO_GC_THRESHOLDS)
            self._video_shown = Window(self._video, height=self._video_height)
        state = self.store.state
        call = state.call_in(state.my_call.chat_id) if state.my_call else None
        if call is None:
            return
        name = next((p.username for p in call.joined() if p.id == user_id), "?")
        self._video.show(user_id, name, frame)
        media = self.runner.call_media() if self.runner is not None else None
        if media is not None:
            self._video.show_self(media.self_view())
        self.app.invalidate()

    def video_people(self) -> set[int]:
        """Whose pictures the video pane holds (tests and the bench look)."""
        return self._video.user_ids() if self._video is not None else set()

    def _video_height(self) -> Dimension:
        rows = self.app.output.get_size().rows
        return Dimension.exact(max(VIDEO_MIN_ROWS, int(rows * VIDEO_SHARE)))

    def _forget_video(self, state: AppState) -> None:
        """Out of the call, or someone left it: their pictures go."""
        if self._video is None:
            return
        call = state.call_in(state.my_call.chat_id) if state.my_call else None
        present = {p.id for p in call.joined()} if call is not None else set()
        for user_id in self._video.user_ids() - present:
            self._video.remove(user_id)
        if call is None:
            self._video.show_self(None)

    def _changed(self, state: AppState) -> None:
        self._forget_video(state)
        if state.screen is not self._screen:
            self._screen = state.screen
            # Signed in or out: the passwords typed leave the form either way
            # (after /logout, Enter alone must not sign straight back in).
            self.sign_in.password.text = ""
            self.sign_in.confirm.text = ""
            target = self.message_line if state.screen is Screen.CHATS else self.sign_in.username
            self.app.layout.focus(target)
        if state.screen is Screen.SIGN_IN:
            # Fields come and go (passwords off, the code view): focus stays on one shown.
            fields = self.sign_in.fields()
            if not any(f.content is self.app.layout.current_control for f in fields):
                self.app.layout.focus(fields[0])
        if self._focus is Focus.SEARCH and state.focus is not Focus.SEARCH:
            # Leaving the people search, however (Esc, F3, Ctrl+O, Ctrl+D...):
            # its query leaves the message line, never to prefix a message.
            self.message_line.text = ""
        self._focus = state.focus
        if state.active_chat != self._history_chat:
            # Another chat open: Up walks its lines, not the last chat's.
            self._history_chat = state.active_chat
            buffer = self.message_line.buffer
            buffer.history = self._chat_history(state.active_chat)
            buffer.reset(buffer.document)
        if state.fill_serial != self._fill_serial:
            # An edit puts the message's text on the line; a cancel empties it.
            self._fill_serial = state.fill_serial
            self.message_line.buffer.document = Document(state.fill, len(state.fill))
        self.app.invalidate()

    def _chat_history(self, chat_id: int | None) -> InMemoryHistory:
        key = chat_id or 0
        if key not in self._histories:
            self._histories[key] = InMemoryHistory(self._sent_lines.get(key, []))
        return self._histories[key]

    def _submit(self, buffer: Any) -> bool:
        text = buffer.text
        asking = self.store.state.asking is not None
        chat = self.store.state.active_chat
        if self.store.state.focus is not Focus.SEARCH and not asking:
            buffer.append_to_history()
            if chat is not None and text.strip():
                try:
                    self._history_file.add(self._server, chat, text)
                except OSError:
                    pass  # kept for this run; a full disk must not stop the chat
        self.store.dispatch(submitted(text))
        if asking:
            # A password: emptied now, so the Buffer's own append_to_history
            # (after this handler) finds nothing to keep.
            buffer.reset()
        return False  # clears the line

    def _typed(self, buffer: Any) -> None:
        from crab.tui import actions as a

        state = self.store.state
        if state.focus is Focus.SEARCH or (buffer.text and not buffer.text.startswith("/")):
            # The people search; or a message being typed (a typing notice).
            self.store.dispatch(a.InputChanged(buffer.text))

    def _sign_in(self) -> None:
        from crab.tui import actions as a

        form = self.sign_in
        self.store.dispatch(
            a.SignInSubmit(form.username.text, form.password.text, form.confirm.text)
        )

    def _sized(self, width: int, height: int) -> None:
        self._pane = (width, height)

    def _key(self, command: Command, number: int = 0) -> None:
        from crab.tui import actions as a

        self._resized()
        self.store.dispatch(a.Key(command, number))

    def _resized(self) -> None:
        from crab.tui import actions as a

        columns = self.app.output.get_size().columns
        if (self._pane, columns) != (self.store.state.pane, self.store.state.columns):
            # Told before the key, not while drawing: paging measures by it.
            self.store.dispatch(a.PaneResized(*self._pane, columns))

    def _clicked_chat(self, chat_id: int) -> None:
        from crab.tui import actions as a

        self.store.dispatch(a.OpenChat(chat_id))
        self.app.layout.focus(self.message_line)

    def _wheel(self, up: bool) -> None:
        from crab.tui import actions as a

        self._resized()
        self.store.dispatch(a.Wheel(up))

    def _quit(self) -> None:
        if self.app.is_running:
            self.app.exit()

    def _key_bindings(self) -> KeyBindings:
        kb = KeyBindings()

        def state() -> AppState:
            return self.store.state

        where = {
            Where.ANYWHERE: Condition(lambda: True),
            Where.SIGN_IN: Condition(lambda: state().screen is Screen.SIGN_IN),
            Where.CHATS: Condition(lambda: state().screen is Screen.CHATS),
            Where.INVITES: Condition(
                lambda: state().focus is Focus.INVITES and state().screen is Screen.CHATS
            ),
            Where.SEARCH: Condition(
                lambda: state().focus is Focus.SEARCH and state().screen is Screen.CHATS
            ),
            # Enter opens a hit only while the line is empty: "/search other" still runs.
            Where.FOUND: Condition(
                lambda: (
                    state().focus is Focus.FOUND
                    and state().screen is Screen.CHATS
                    and not self.message_line.text
                )
            ),
            Where.EMPTY_LINE: Condition(
                lambda: (
                    state().focus is Focus.INPUT
                    and state().screen is Screen.CHATS
                    and state().asking is None
                    and not self.message_line.text
                )
            ),
            Where.MESSAGES: Condition(
                lambda: state().focus is Focus.MESSAGES and state().screen is Screen.CHATS
            ),
            Where.HELP: Condition(
                lambda: state().focus is Focus.HELP and state().screen is Screen.CHATS
            ),
            # Call keys work on every panel (and say so when there is no call).
            Where.CALL: Condition(lambda: state().screen is Screen.CHATS),
        }
        # Esc acts at once when pressed alone; when a key follows it in the
        # same read it is Alt+KEY (Alt+1, Alt+Left...), never Esc then a
        # stray character. A lone Esc has already waited the input's
        # ttimeoutlen for a following key.
        lone_esc = Condition(lambda: not self.app.key_processor.input_queue)
        for binding in self._keys:
            command = binding.command
            if command in (Command.NEWLINE, Command.HISTORY_BACK, Command.HISTORY_FORWARD):
                continue  # the buffer's keys, bound below

            def handler(event: KeyPressEvent, command: Command = command) -> None:
                buffer = self.message_line.buffer
                if command is Command.BACK and buffer.complete_state is not None:
                    buffer.cancel_completion()  # Esc closes the menu first
                    return
                last = event.key_sequence[-1].key
                self._key(command, int(last) if isinstance(last, str) and last.isdigit() else 0)

            for key in binding.keys:  # alternatives, each one key (Alt+KEY: Esc, KEY)
                sequence = key_sequence(key)
                eager = lone_esc if sequence == ("escape",) else True
                kb.add(*sequence, filter=where[binding.where], eager=eager)(handler)
        kb.add("c-c")(lambda event: self._key(Command.QUIT))
        on_line = has_focus(self.message_line)

        @kb.add("enter", filter=on_line)
        def _(event: KeyPressEvent) -> None:
            # The line is multi-line, where Enter would add a line: it sends.
            event.current_buffer.validate_and_handle()

        def keys(command: Command) -> tuple[str, ...]:
            return tuple(k for b in self._keys if b.command is command for k in b.keys)

        for key in keys(Command.NEWLINE):  # Ctrl+J, Alt+Enter (Esc+Enter in one read)
            kb.add(*key_sequence(key), filter=on_line)(
                lambda event: event.current_buffer.newline(copy_margin=False)
            )
        for key in keys(Command.HISTORY_BACK):
            kb.add(*key_sequence(key), filter=on_line)(
                lambda event: event.current_buffer.history_backward()
            )
        for key in keys(Command.HISTORY_FORWARD):
            kb.add(*key_sequence(key), filter=on_line)(
                lambda event: event.current_buffer.history_forward()
            )

        on_sign_in = where[Where.SIGN_IN]

        @kb.add("tab", filter=on_sign_in)
        def _(event: KeyPressEvent) -> None:
            self.app.layout.focus(self.sign_in.next_field(self.app.layout.current_control))

        @kb.add("s-tab", filter=on_sign_in)
        def _(event: KeyPressEvent) -> None:
            target = self.sign_in.next_field(self.app.layout.current_control, -1)
            self.app.layout.focus(target)

        return kb

    # ---- running ---------------------------------------------------------

    async def run(self) -> None:
        def after_first_paint() -> None:
            self.app.create_background_task(self._connect())

        try:
            # set_exception_handler=False: a stray error in a background task
            # is logged, never turned into a "Press ENTER" prompt that freezes
            # the screen.
            await self.app.run_async(pre_run=after_first_paint, set_exception_handler=False)
        finally:
            use_keys(KEYS)  # the help of another app in this process is its own
            if self.runner is not None:
                await self.runner.close()
                self.runner.client.close()


def _bell(chosen: str | None, settings: SettingsFile, config: ChatConfig) -> Bell:
    """The --bell option, else the saved /bell choice, else config.toml's,
    else mentions; a saved value this version does not know is ignored."""
    for value in (chosen, settings.bell()):
        if value is not None:
            try:
                return Bell("off" if value == "none" else value)
            except ValueError:
                continue
    return config.bell or Bell.MENTIONS


def _order(chosen: str | None, settings: SettingsFile) -> Order:
    """--order (saved for next time), else the saved one, else fixed."""
    if chosen is not None:
        with contextlib.suppress(OSError):
            settings.save_order(chosen)
    for value in (chosen, settings.order()):
        try:
            return Order(value)
        except ValueError:
            continue
    return Order.FIXED


def submitted(text: str) -> Submit:
    """Enter's action, stamped with the time and a new client message id
    here, so that the reducers stay pure."""
    import uuid  # not on the way to the first paint (the client imports it after)

    from crab.core.clock import now
    from crab.tui import actions as a

    return a.Submit(text, now(), uuid.uuid4().hex)


def run_chat(
    server: str,
    config_dir: Path,
    tls: ssl.SSLContext | None,
    vi: bool,
    bell: str | None,
    config: ChatConfig | None = None,
    mouse: bool | None = None,
    order: str | None = None,
) -> None:
    async def main() -> None:
        # Built inside the loop: grpclib's channel binds to the running loop.
        app = ChatApp(
            server,
            config_dir,
            tls=tls,
            vi=vi,
            bell=bell,
            config=config,
            mouse=mouse,
            order=order,
        )
        await app.run()

    asyncio.run(main())
