"""The whole client state, immutable. Reducers make new states; views
only read them."""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass, field, replace
from datetime import datetime

SIDEBAR_COLUMNS = 60  # narrower terminals hide the chat list unless F6 shows it


class Screen(enum.Enum):
    SIGN_IN = "sign-in"
    CHATS = "chats"


class Focus(enum.Enum):
    INPUT = "input"
    CHAT_LIST = "chat list"
    INVITES = "invites"
    SEARCH = "search"
    FOUND = "found"  # message search results
    HELP = "help"
    MESSAGES = "messages"  # a message of the open chat is selected
    NAMES = "names"  # the open chat's members (/names)


class Asking(enum.Enum):
    """The message line asks for a password (masked, never in history)."""

    CURRENT_PASSWORD = "current password"
    NEW_PASSWORD = "new password"


class Bell(enum.Enum):
    """When the terminal bell rings for a message in another chat (/bell)."""

    ALL = "all"  # every message
    MENTIONS = "mentions"  # those that mention me or @room, and personal conversations
    OFF = "off"


class Order(enum.Enum):
    """The chat list's order (`crab chat --order`)."""

    FIXED = "fixed"  # by when the chat began (its id): nothing moves under me
    ACTIVITY = "activity"  # the chat with the newest message first


class Notify(enum.Enum):
    """Desktop notifications through the terminal, for what rings the bell
    (config.toml's notify)."""

    OFF = "off"
    OSC777 = "osc777"  # ESC]777;notify;TITLE;BODY BEL (foot, kitty, WezTerm, urxvt...)
    OSC9 = "osc9"  # ESC]9;BODY BEL (iTerm2, Windows Terminal, kitty, WezTerm...)


class Link(enum.Enum):
    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    username: str
    display_name: str


@dataclass(frozen=True, slots=True)
class Quote:
    """The one-line quote of the message a reply answers, as the server
    sent it with the reply (the view prefers the loaded original: newer)."""

    sender: str
    text_start: str
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Reaction:
    emoji: str
    user_ids: tuple[int, ...]  # who reacted with it, in order


@dataclass(frozen=True, slots=True)
class Line:
    """One message as the client shows it."""

    chat_id: int
    id: int  # 0 while it waits for its acknowledgement
    sender: Person
    text: str
    sent_at: datetime
    client_message_id: str
    pending: bool = False
    reply_to_id: int = 0  # the message this one replies to (0: none)
    quote: Quote | None = None
    edited_at: datetime | None = None
    deleted: bool = False  # a tombstone: the text is gone
    reactions: tuple[Reaction, ...] = ()
    # The chat's change sequence number of this copy's newest change (edit,
    # delete, reaction): of two copies of a message, the higher one wins.
    change_seq: int = 0
    # Whom it mentions, as the server parsed it (@username; @room: everyone).
    mention_user_ids: tuple[int, ...] = ()
    mentions_room: bool = False

    def mentions(self, user_id: int) -> bool:
        """Whether it mentions this person (by name, or everyone by @room)."""
        return self.mentions_room or user_id in self.mention_user_ids


@dataclass(frozen=True, slots=True)
class ChatItem:
    id: int
    is_room: bool
    name: str
    unread: int = 0
    mentions: int = 0  # unread messages that mention me (or @room)
    last_message_id: int = 0
    last_activity: datetime | None = None
    topic: str = ""
    # Rooms: the creator, who renames, sets the topic, removes members and
    # may delete any message.
    owner_id: int = 0
    # The newest change_seq applied from the live stream: sent back in the
    # Resume cursor, so changes made while away are replayed.
    last_change_seq: int = 0


class PresenceState(enum.Enum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class PresenceItem:
    """Someone's presence as the server last said; last_seen only offline."""

    state: PresenceState
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallPerson:
    person: Person
    state: str  # "ringing", "joined", "declined", "left", "missed"


@dataclass(frozen=True, slots=True)
class IceItem:
    urls: tuple[str, ...]
    username: str = ""
    credential: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class CallItem:
    """A call of one of my chats as the server last told (docs/calls.md)."""

    id: str
    chat_id: int
    started_by: Person
    video: bool
    stage: str  # "ringing", "active", "ended"
    members: tuple[CallPerson, ...]
    connected_at: datetime | None = None
    end_reason: str = ""
    ice: tuple[IceItem, ...] = ()
    relay_only: bool = False
    sfu_url: str = ""
    sfu_room: int = 0
    sfu_pin: str = field(default="", repr=False)
    sfu_token: str = field(default="", repr=False)
    here: bool = False  # the server has this client's session in the call

    def state_of(self, user_id: int) -> str:
        return next((m.state for m in self.members if m.person.id == user_id), "")

    def joined(self) -> tuple[Person, ...]:
        return tuple(m.person for m in self.members if m.state == "joined")


@dataclass(frozen=True, slots=True)
class MyCall:
    """The call this client is in: its own controls and what its media says."""

    call_id: str
    chat_id: int
    muted: bool = False
    camera: bool = True
    # Per other participant: the link's state ("connecting", "connected",
    # "failed"), the audio level 0..1 and the connection quality.
    links: dict[int, str] = field(default_factory=dict)
    levels: dict[int, float] = field(default_factory=dict)
    quality: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Typist:
    """Someone typing in a chat; `serial` tells which expiry timer is theirs."""

    chat_id: int
    person: Person
    serial: int


@dataclass(frozen=True, slots=True)
class History:
    """The loaded part of one chat, oldest first."""

    lines: tuple[Line, ...] = ()
    has_more: bool = True  # older messages exist on the server
    loading: bool = False
    members: tuple[Person, ...] = ()
    # Member frames that came while the member list was being read: applied
    # again over the list when it lands, so an answer read before a join
    # cannot undo it (applying a change twice is harmless).
    members_loaded: bool = False
    member_changes: tuple[tuple[Person, bool], ...] = ()

    def with_member(self, person: Person, joined: bool) -> History:
        others = tuple(p for p in self.members if p.id != person.id)
        history = replace(self, members=(*others, person) if joined else others)
        if self.members_loaded:
            return history
        return replace(history, member_changes=(*self.member_changes, (person, joined)))

    def with_members(self, members: tuple[Person, ...]) -> History:
        history = replace(self, members=members, members_loaded=True, member_changes=())
        for person, joined in self.member_changes:
            history = history.with_member(person, joined)
        return history

    # Members' read positions: user id -> the newest message id they read.
    read: dict[int, int] = field(default_factory=dict)

    @property
    def newest_id(self) -> int:
        for line in reversed(self.lines):
            if line.id:
                return line.id
        return 0

    @property
    def oldest_id(self) -> int:
        for line in self.lines:
            if line.id:
                return line.id
        return 0

    def index(self, message_id: int) -> int | None:
        """Where the message with this id is in `lines` (None: not loaded).
        Lines are in id order: a binary search, as views ask per reply drawn."""
        if not message_id:
            return None
        at = bisect.bisect_left(self.lines, message_id, key=lambda line: line.id)
        if at < len(self.lines) and self.lines[at].id == message_id:
            return at
        return None

    def find(self, message_id: int) -> Line | None:
        i = self.index(message_id)
        return None if i is None else self.lines[i]


@dataclass(frozen=True, slots=True)
class InviteItem:
    id: int
    inviter: Person
    invitee: Person
    room_id: int | None  # None: a personal conversation
    room_name: str


@dataclass(frozen=True, slots=True)
class Provider:
    """The team's identity provider, as the server offers it (name made
    inert and cut: it is drawn on the sign-in screen)."""

    name: str
    issuer: str
    client_id: str
    scopes: tuple[str, ...] = ()
    client_secret: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class ProviderCode:
    """What the provider asks the person to do: open the page, enter the code."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str = ""  # the page with the code filled in


@dataclass(frozen=True, slots=True)
class SignInForm:
    username: str = ""
    signing_up: bool = False
    busy: bool = False
    error: str = ""
    # What the server allows (GetSignInOptions); until it says, passwords.
    passwords: bool = True
    sign_up_open: bool = True
    provider: Provider | None = None
    # The device flow: the number of the newest one started (an answer of
    # an older, cancelled one is dropped), whether it is on its way, and
    # the code it shows once the provider gave one.
    flow: int = 0
    with_provider: bool = False
    code: ProviderCode | None = None


@dataclass(frozen=True, slots=True)
class Search:
    query: str = ""
    request: int = 0  # number of the newest request; older answers are dropped
    results: tuple[Person, ...] = ()
    selected: int = 0


@dataclass(frozen=True, slots=True)
class FoundMessage:
    """One message search hit: where it is and which spans of it matched."""

    chat_id: int
    chat_name: str
    line: Line
    marks: tuple[tuple[int, int], ...]  # [start, end) in line.text


@dataclass(frozen=True, slots=True)
class FoundMessages:
    query: str = ""
    request: int = 0  # number of the newest request; older answers are dropped
    hits: tuple[FoundMessage, ...] = ()
    selected: int = 0
    searching: bool = False


@dataclass(frozen=True, slots=True)
class Connection:
    link: Link = Link.OFFLINE
    retry_in: float = 0.0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AppState:
    server: str
    screen: Screen = Screen.SIGN_IN
    focus: Focus = Focus.INPUT
    sign_in: SignInForm = SignInForm()
    me: Person | None = None
    connection: Connection = Connection()
    chats: tuple[ChatItem, ...] = ()
    active_chat: int | None = None
    closed: bool = False  # /close left no chat open: a reload of the list opens none
    histories: dict[int, History] = field(default_factory=dict)
    # Scroll position: how many of the open chat's newest messages are
    # hidden below the bottom of the view (0: the newest is shown).
    scroll: int = 0
    # A message taller than the pane is paged through: (its id, its rows
    # hidden below the pane). Void once another message is at the bottom.
    scroll_cut: tuple[int, int] = (0, 0)
    # Messages that came while scrolled back (the marker row counts them).
    new_below: int = 0
    # The read marker: (chat id, the first message unread when it was
    # opened); "── new messages ──" shows above it while the chat stays open.
    read_marker: tuple[int, int] = (0, 0)
    # The message pane's size (columns, rows) and the terminal's columns, as
    # last drawn: paging moves by a screen, the sidebar hides when narrow.
    pane: tuple[int, int] = (80, 20)
    columns: int = 120
    sidebar: bool | None = None  # shown? None: as the width allows (F6 sets it)
    help_scroll: int = 0  # rows of the help scrolled off its top
    invites: tuple[InviteItem, ...] = ()
    sent_invites: tuple[InviteItem, ...] = ()
    invite_selected: int = 0
    search: Search = Search()
    found: FoundMessages = FoundMessages()
    # The selected message of the open chat (0: none): Focus.MESSAGES moves
    # it; reply, edit, delete, react and copy act on it.
    selected: int = 0
    # The message of the open chat being edited on the message line (0: none).
    editing: int = 0
    # The message the next message sent replies to (0: none).
    replying: int = 0
    # Text the message line is to show: the app copies it into the line
    # whenever the serial changes (an edit fills it, a cancel empties it).
    fill: str = ""
    fill_serial: int = 0
    # Sends not yet acknowledged, in order; re-sent (same ids) on reconnect.
    outbox: tuple[Line, ...] = ()
    # MyChats calls on their way, and the joins (a chat) and leaves (None)
    # seen meanwhile: applied again over the answer, which may predate them.
    chats_loading: int = 0
    chat_changes: tuple[tuple[int, ChatItem | None], ...] = ()
    # The server's limit on a message (its Ready frame says; 0: not known).
    max_message_chars: int = 0
    # The last error or hint, shown in the status bar for a few seconds
    # (reducers/app.py); each new one gets the next serial, so the timer of
    # an older notice leaves a newer one alone.
    notice: str = ""
    notice_serial: int = 0
    bell: Bell = Bell.MENTIONS
    order: Order = Order.FIXED
    notify: Notify = Notify.OFF
    # Chats that never ring nor notify (/mute), by id.
    muted: frozenset[int] = frozenset()
    # From config.toml: timestamps with seconds; the chat list's columns (0: auto).
    seconds: bool = False
    sidebar_width: int = 0
    # /password: which answer the message line waits for, and the current
    # password until the new one is typed (dropped when the call goes out).
    asking: Asking | None = None
    current_password: str = field(default="", repr=False)
    ring: int = 0  # bumped when the terminal bell should ring
    # Who is typing where (each expires TYPING_SECONDS after its last notice).
    typing: tuple[Typist, ...] = ()
    typing_serial: int = 0
    # People's presence, by user id (those I share a chat with).
    presence: dict[int, PresenceItem] = field(default_factory=dict)
    # Personal conversations: chat id -> the other person (for presence marks).
    peers: dict[int, Person] = field(default_factory=dict)
    # Calls going on in my chats, the one this client is in, and the chat of
    # a /call or an answer on its way to the server (0: none).
    calls: tuple[CallItem, ...] = ()
    my_call: MyCall | None = None
    calling: int = 0
    quitting: bool = False

    def sidebar_shown(self) -> bool:
        if self.sidebar is not None:
            return self.sidebar
        return self.columns >= SIDEBAR_COLUMNS

    def chat(self, chat_id: int | None) -> ChatItem | None:
        return next((c for c in self.chats if c.id == chat_id), None)

    def call_in(self, chat_id: int | None) -> CallItem | None:
        return next((c for c in self.calls if c.chat_id == chat_id), None)

    def ringing_for_me(self) -> CallItem | None:
        """The call ringing for me that this client has not answered."""
        if self.me is None:
            return None
        return next((c for c in self.calls if c.state_of(self.me.id) == "ringing"), None)

    def history(self, chat_id: int | None) -> History:
        return self.histories.get(chat_id or 0, History())
