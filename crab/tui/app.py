"""`crab chat`: the prompt_toolkit application. Wires the store, the
effects runner and the views; keys come from the key table."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prompt_toolkit.application import Application
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from prompt_toolkit.widgets import TextArea

from crab import start_up
from crab.tui.keys import COMMANDS, KEYS, Command, Where
from crab.tui.saved import SessionFile
from crab.tui.state import AppState, Connection, Focus, Link, Person, Screen
from crab.tui.store import Store
from crab.tui.views.layout import STYLE, SignInForm, build_layout

if TYPE_CHECKING:
    from crab.tui.actions import Submit
    from crab.tui.effects import Effect
    from crab.tui.runner import Runner

# Before the first paint this module needs only prompt_toolkit, the state and
# the views. The rest (actions, reducers, effects, and the I/O side with
# grpclib and the generated API) is imported just after it: see `run`.

USER_COMMANDS = {"invite", "dm", "kick"}
# Keys that leave the people search: its query on the message line goes too.
LEAVE_SEARCH = {Command.SEARCH, Command.BACK, Command.HELP}


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

    def get_completions(self, document: Document, complete_event: Any) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or self._store.state.asking is not None:
            return
        name, space, arg = text[1:].partition(" ")
        if not space:
            for command in COMMANDS:
                if command.name.startswith(name):
                    yield Completion(command.name, -len(name), display_meta=command.help)
        elif name in USER_COMMANDS:
            for person in sorted(self._people()):
                if person.startswith(arg.lstrip("@")):
                    yield Completion(person, -len(arg))


class ChatApp:
    def __init__(
        self,
        server: str,
        config_dir: Path,
        tls: ssl.SSLContext | None = None,
        vi: bool = False,
        bell: str = "all",
        input: Input | None = None,
        output: Output | None = None,
        state: AppState | None = None,
    ) -> None:
        """`state`: start from it instead of the sign-in form or the saved
        session (`crab bench chat` opens a chat of 10,000 messages so)."""
        host, _, port = server.rpartition(":")
        sessions = SessionFile(config_dir)
        start = AppState(server=server, bell=bell) if state is None else state
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
        self.message_line = TextArea(
            multiline=False,
            completer=ChatCompleter(self.store),
            complete_while_typing=True,
            history=InMemoryHistory(),
            accept_handler=self._submit,
            # Masked while /password asks; such answers never enter the history.
            password=Condition(lambda: self.store.state.asking is not None),
        )
        self.message_line.buffer.on_text_changed += self._typed
        self.sign_in = SignInForm(lambda: self.store.state, self._sign_in)
        self._pane = self.store.state.pane  # the message pane's size, as last drawn
        self.app: Application[None] = Application(
            layout=build_layout(
                lambda: self.store.state, self.sign_in, self.message_line, self._sized
            ),
            key_bindings=self._key_bindings(),
            style=STYLE,
            include_default_pygments_style=False,  # no syntax highlighting here
            full_screen=True,
            editing_mode=EditingMode.VI if vi else EditingMode.EMACS,
            input=input,
            output=output,
        )
        self.store.on_effect(self._effect)
        self.store.subscribe(self._changed)
        self._screen = self.store.state.screen
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
        )
        for effect in self._waiting:
            self.runner(effect)
        self._waiting.clear()
        self.started.set()
        await self.runner.resume_saved()

    def _changed(self, state: AppState) -> None:
        if state.screen is not self._screen:
            self._screen = state.screen
            target = self.message_line if state.screen is Screen.CHATS else self.sign_in.username
            self.app.layout.focus(target)
        if state.fill_serial != self._fill_serial:
            # An edit puts the message's text on the line; a cancel empties it.
            self._fill_serial = state.fill_serial
            self.message_line.buffer.document = Document(state.fill, len(state.fill))
        self.app.invalidate()

    def _submit(self, buffer: Any) -> bool:
        text = buffer.text
        asking = self.store.state.asking is not None
        if self.store.state.focus is not Focus.SEARCH and not asking:
            buffer.append_to_history()
        self.store.dispatch(submitted(text))
        if asking:
            # A password: emptied now, so the Buffer's own append_to_history
            # (after this handler) finds nothing to keep.
            buffer.reset()
        return False  # clears the line

    def _typed(self, buffer: Any) -> None:
        from crab.tui import actions as a

        if self.store.state.focus is Focus.SEARCH:
            self.store.dispatch(a.InputChanged(buffer.text))

    def _sign_in(self) -> None:
        from crab.tui import actions as a

        form = self.sign_in
        self.store.dispatch(
            a.SignInSubmit(form.username.text, form.password.text, form.confirm.text)
        )

    def _sized(self, width: int, height: int) -> None:
        self._pane = (width, height)

    def _key(self, command: Command) -> None:
        from crab.tui import actions as a

        columns = self.app.output.get_size().columns
        if (self._pane, columns) != (self.store.state.pane, self.store.state.columns):
            # Told before the key, not while drawing: paging measures by it.
            self.store.dispatch(a.PaneResized(*self._pane, columns))
        self.store.dispatch(a.Key(command))

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
        }
        for binding in KEYS:
            command = binding.command

            def handler(event: KeyPressEvent, command: Command = command) -> None:
                if command in LEAVE_SEARCH and state().focus is Focus.SEARCH:
                    self.message_line.text = ""
                self._key(command)

            for key in binding.keys:  # alternatives, each one key press
                kb.add(key, filter=where[binding.where], eager=True)(handler)
        kb.add("c-c")(lambda event: self._key(Command.QUIT))
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
            if self.runner is not None:
                await self.runner.close()
                self.runner.client.close()


def submitted(text: str) -> Submit:
    """Enter's action, stamped with the time and a new client message id
    here, so that the reducers stay pure."""
    import uuid  # not on the way to the first paint (the client imports it after)

    from crab.core.clock import now
    from crab.tui import actions as a

    return a.Submit(text, now(), uuid.uuid4().hex)


def run_chat(
    server: str, config_dir: Path, tls: ssl.SSLContext | None, vi: bool, bell: str
) -> None:
    async def main() -> None:
        # Built inside the loop: grpclib's channel binds to the running loop.
        await ChatApp(server, config_dir, tls=tls, vi=vi, bell=bell).run()

    asyncio.run(main())
