"""The screens: sign-in, and chats (sidebar, messages or a panel, the
message line, the status bar). Containers read the state when drawn."""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.application.current import get_app
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    ConditionalContainer,
    DynamicContainer,
    Float,
    FloatContainer,
    FormattedTextControl,
    HSplit,
    Layout,
    VSplit,
    Window,
)
from prompt_toolkit.layout.containers import AnyContainer
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.layout.menus import CompletionsMenu
from prompt_toolkit.styles import Style
from prompt_toolkit.widgets import Frame, Label, TextArea

from crab.tui.keys import Command, keys_for, keys_label
from crab.tui.state import SIDEBAR_COLUMNS, AppState, Focus, Screen
from crab.tui.views import call_bar, device_code, panels, qr
from crab.tui.views.messages import MessagesControl, Mouse, RowsControl, Sized
from crab.tui.views.nicks import NICK_STYLES

SIDEBAR_WIDE = 26  # the chat list's columns from WIDE columns on
SIDEBAR_NARROW = 20  # from SIDEBAR_COLUMNS up to WIDE
WIDE = 80
FORM_COLUMNS = 64  # the sign-in form's width (the code view widens for its QR code)


def _columns() -> int:
    return get_app().output.get_size().columns


def sidebar_shown(state: AppState) -> bool:
    """F6's choice, else shown when the terminal is SIDEBAR_COLUMNS wide."""
    return state.sidebar if state.sidebar is not None else _columns() >= SIDEBAR_COLUMNS


STYLE = Style.from_dict(
    {
        "title": "bold",
        "hint": "ansibrightblack",
        "match": "bold underline",
        "active": "reverse",
        "unread": "bold ansiyellow",
        "sender": "ansicyan",
        "mine": "ansigreen bold",
        "time": "ansibrightblack",
        "day": "ansibrightblack",
        "pending": "ansibrightblack italic",
        "status": "reverse",
        "ok": "reverse ansigreen",
        "warn": "reverse ansiyellow",
        "error": "ansired bold",
        "selected": "reverse",
        "quote": "ansibrightblack italic",
        "tombstone": "ansibrightblack italic",
        "reactions": "ansiyellow",
        "mention": "bold ansimagenta",
        "link": "underline",
        "topic": "italic",
        "video.name": "reverse",
        "qr": "fg:ansiblack bg:ansiwhite",  # dark modules on light, whatever the theme
        "user-code": "bold reverse",
        "button": "bold",
        "button.focused": "bold reverse",
        **NICK_STYLES,
    }
)


class SignInForm:
    """The form (username, password, confirm when signing up, and the
    provider's button when the server has one; with passwords off only the
    button), or the device flow's code view while it runs."""

    def __init__(
        self,
        state: Callable[[], AppState],
        submit: Callable[[], None],
        with_provider: Callable[[], None] = lambda: None,
    ) -> None:
        self.username = TextArea(multiline=False, prompt="Username: ", accept_handler=self._next)
        self.password = TextArea(
            multiline=False, password=True, prompt="Password: ", accept_handler=self._accept
        )
        self.confirm = TextArea(
            multiline=False, password=True, prompt="Confirm:  ", accept_handler=self._accept
        )
        self._submit = submit
        self._state = state
        signing_up = Condition(lambda: state().sign_in.signing_up)
        passwords = Condition(lambda: state().sign_in.passwords)
        has_provider = Condition(lambda: state().sign_in.provider is not None)

        def title() -> str:
            form = state().sign_in
            if form.with_provider and form.provider is not None:
                return f"Sign in with {form.provider.name}"
            return "Create an account" if form.signing_up else "Sign in to crab"

        def hint() -> StyleAndTextTuples:
            form = state().sign_in
            out: StyleAndTextTuples = []
            if form.error:
                out.append(("class:error", form.error + "\n"))
            if form.busy:
                out.append(("class:hint", "one moment...\n"))
            keys = ["Enter: continue", "Tab: next field"] if form.passwords else ["Enter: continue"]
            more = []
            if form.sign_up_open:
                other = "sign in" if form.signing_up else "create an account"
                more.append(f"{keys_label(keys_for(Command.TOGGLE_SIGNUP))}: {other}")
            more.append(f"{keys_label(keys_for(Command.QUIT))}: quit")
            # One hint a row: each fits the form's width, or wraps whole.
            out.append(
                (
                    "class:hint",
                    f"{'   '.join(keys)}\n{'   '.join(more)}\nServer: {state().server}",
                )
            )
            return out

        def button_text() -> StyleAndTextTuples:
            provider = state().sign_in.provider
            name = provider.name if provider else ""
            focused = get_app().layout.current_control is self.provider.content
            style = "class:button.focused" if focused else "class:button"
            key = keys_label(keys_for(Command.SIGN_IN_PROVIDER))
            return [(style, f"< Sign in with {name} >"), ("class:hint", f"  {key}")]

        press = KeyBindings()

        @press.add("enter")
        @press.add(" ")
        def _(event: KeyPressEvent) -> None:
            with_provider()

        # A button of our own: its label names the provider the server gave.
        self.provider = Window(
            FormattedTextControl(button_text, focusable=True, key_bindings=press),
            height=1,
        )
        form_body = HSplit(
            [
                ConditionalContainer(
                    HSplit(
                        [
                            self.username,
                            self.password,
                            ConditionalContainer(self.confirm, filter=signing_up),
                        ]
                    ),
                    filter=passwords,
                ),
                ConditionalContainer(
                    HSplit([Window(height=1), self.provider]),
                    filter=has_provider,
                ),
                Window(height=1),
                Window(FormattedTextControl(hint), height=Dimension(min=4), wrap_lines=True),
            ]
        )

        def code_text() -> StyleAndTextTuples:
            size = get_app().output.get_size()
            return device_code.code_view(state().sign_in, size.columns, size.rows)

        # Focusable, so that keys typed meanwhile land nowhere (Esc cancels).
        self.code = Window(FormattedTextControl(code_text, focusable=True), wrap_lines=True)

        def body() -> AnyContainer:
            return self.code if state().sign_in.with_provider else form_body

        def width() -> Dimension:
            form = state().sign_in
            code = form.code
            wide = FORM_COLUMNS
            if form.with_provider and code is not None:
                drawn = qr.rows(code.verification_uri_complete or code.verification_uri)
                wide = max(wide, len(drawn[0]) + 4 if drawn else 0)
            return Dimension(max=wide, preferred=wide)

        self.container = HSplit(
            [
                Window(),
                VSplit(
                    [
                        Window(),
                        Frame(DynamicContainer(body), title=title, width=width),
                        Window(),
                    ]
                ),
                Window(),
            ]
        )

    def fields(self) -> list[Window]:
        """What Tab moves through, as the state says now."""
        form = self._state().sign_in
        if form.with_provider:
            return [self.code]
        shown: list[Window] = []
        if form.passwords:
            shown += [self.username.window, self.password.window]
            shown += [self.confirm.window] if form.signing_up else []
        if form.provider is not None:
            shown.append(self.provider)
        return shown or [self.username.window]

    def next_field(self, current: object, step: int = 1) -> Window:
        """The field Tab (or Shift+Tab) moves to: decided from the state, not
        from what was last drawn, so fast typing cannot lose its way."""
        fields = self.fields()
        at = next((i for i, f in enumerate(fields) if f.content is current), -1)
        return fields[(at + step) % len(fields)]

    def _next(self, _buffer: object) -> bool:
        self._submit() if self.password.text else None
        return True  # keep the text

    def _accept(self, _buffer: object) -> bool:
        self._submit()
        return True


def chats_screen(
    state: Callable[[], AppState],
    message_line: TextArea,
    on_size: Sized | None = None,
    mouse: Mouse | None = None,
    video: AnyContainer | None = None,
) -> AnyContainer:
    """`video`: the call's pictures, shown above the messages while my
    call has video (crab/tui/views/video.py)."""
    # Built once: a new Window per render would throw prompt_toolkit's
    # caches away on every key press.
    messages = Window(MessagesControl(state, on_size, mouse), wrap_lines=False)
    open_chat = mouse.open_chat if mouse is not None else None
    panes = {
        Focus.INVITES: Window(
            FormattedTextControl(lambda: panels.invites_panel(state())), wrap_lines=True
        ),
        Focus.SEARCH: Window(
            FormattedTextControl(lambda: panels.search_panel(state())), wrap_lines=True
        ),
        Focus.FOUND: Window(
            FormattedTextControl(lambda: panels.found_panel(state())), wrap_lines=False
        ),
        Focus.HELP: Window(
            RowsControl(lambda w, h: panels.help_panel(state(), w, h), on_size), wrap_lines=False
        ),
        Focus.NAMES: Window(
            FormattedTextControl(lambda: panels.names_panel(state())), wrap_lines=True
        ),
    }

    def body() -> AnyContainer:
        return panes.get(state().focus, messages)

    def prompt_text() -> str:
        asking = state().asking
        if asking is not None:
            return f"{asking.value}> "
        return "search> " if state().focus is Focus.SEARCH else "> "

    prompt = Window(FormattedTextControl(prompt_text), dont_extend_width=True)
    counter = Window(
        FormattedTextControl(lambda: panels.counter(state(), message_line.text)),
        dont_extend_width=True,
    )
    screen = HSplit(
        [
            VSplit(
                [
                    ConditionalContainer(
                        VSplit(
                            [
                                Window(
                                    FormattedTextControl(
                                        lambda: panels.sidebar(
                                            state(), sidebar_width(state()), open_chat
                                        )
                                    ),
                                    width=lambda: sidebar_width(state()),
                                ),
                                Window(width=1, char="│", style="class:hint"),
                            ]
                        ),
                        filter=Condition(lambda: sidebar_shown(state())),
                    ),
                    HSplit(
                        [
                            ConditionalContainer(
                                Window(
                                    FormattedTextControl(lambda: call_bar.call_bar(state())),
                                    height=1,
                                ),
                                filter=Condition(lambda: call_bar.shown(state())),
                            ),
                            Window(FormattedTextControl(lambda: panels.header(state())), height=1),
                            Window(height=1, char="─", style="class:hint"),
                            ConditionalContainer(
                                video or Window(height=0),
                                filter=Condition(lambda: _video_shown(state(), video)),
                            ),
                            DynamicContainer(body),
                        ]
                    ),
                ]
            ),
            Window(height=1, char="─", style="class:hint"),
            ConditionalContainer(
                Window(FormattedTextControl(lambda: panels.composing(state())), height=1),
                filter=Condition(lambda: bool(state().editing or state().replying)),
            ),
            ConditionalContainer(
                Window(
                    FormattedTextControl(lambda: panels.usage(state(), message_line.text)),
                    height=1,
                ),
                filter=Condition(lambda: bool(panels.usage(state(), message_line.text))),
            ),
            VSplit([prompt, message_line, counter]),
            Window(
                FormattedTextControl(lambda: panels.status(state())), height=1, style="class:status"
            ),
        ]
    )
    # The completion menu: commands with their help while a slash command is
    # typed, nicks on Tab; drawn over the messages, at the cursor.
    menu = Float(xcursor=True, ycursor=True, content=CompletionsMenu(max_height=8, scroll_offset=1))
    return FloatContainer(screen, floats=[menu])


def _video_shown(state: AppState, video: AnyContainer | None) -> bool:
    if video is None or state.my_call is None:
        return False
    call = next((c for c in state.calls if c.id == state.my_call.call_id), None)
    return call is not None and call.video


def sidebar_width(state: AppState) -> int:
    """config.toml's sidebar_width, else as wide as the terminal allows."""
    if state.sidebar_width:
        return state.sidebar_width
    return SIDEBAR_WIDE if _columns() >= WIDE else SIDEBAR_NARROW


def build_layout(
    state: Callable[[], AppState],
    sign_in: SignInForm,
    message_line: TextArea,
    on_size: Sized | None = None,
    mouse: Mouse | None = None,
    video: AnyContainer | None = None,
) -> Layout:
    """`on_size`: told the message pane's size each time it is drawn;
    `mouse`: what clicks and the wheel do."""
    chats = chats_screen(state, message_line, on_size, mouse, video)

    def screen() -> AnyContainer:
        return sign_in.container if state().screen is Screen.SIGN_IN else chats

    first = sign_in.fields()[0] if state().screen is Screen.SIGN_IN else message_line.window
    return Layout(DynamicContainer(screen), focused_element=first)


__all__ = ["STYLE", "Label", "SignInForm", "build_layout"]
