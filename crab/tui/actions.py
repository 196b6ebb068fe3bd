"""Everything that can happen to the client: keys and typing, RPC results,
and frames from the session stream. Reducers turn these into new states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crab.tui.keys import Command
from crab.tui.state import (
    CallItem,
    ChatItem,
    Connection,
    FoundMessage,
    InviteItem,
    Line,
    Person,
    PresenceItem,
    Provider,
    ProviderCode,
)

# ---- the user -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Key:
    """A key command from the key table (crab/tui/keys.py)."""

    command: Command
    number: int = 0  # Alt+N's N (Command.OPEN_NUMBERED)


@dataclass(frozen=True, slots=True)
class PaneResized:
    """The message pane was drawn at a new size (the app tells before a key)."""

    width: int
    height: int
    columns: int  # the terminal's


@dataclass(frozen=True, slots=True)
class Submit:
    """Enter on the input line: a message, or a slash command. The app
    stamps each with the time and a new client message id (a message's, if
    it is one): the reducer takes them from here and stays a pure function."""

    text: str
    sent_at: datetime
    client_message_id: str


@dataclass(frozen=True, slots=True)
class InputChanged:
    text: str


@dataclass(frozen=True, slots=True)
class OpenChat:
    chat_id: int


@dataclass(frozen=True, slots=True)
class Wheel:
    """The mouse wheel over the messages: a few messages back (up) or forward."""

    up: bool


@dataclass(frozen=True, slots=True)
class SignInSubmit:
    username: str
    password: str
    confirm: str = ""


@dataclass(frozen=True, slots=True)
class Started:
    """The I/O side is up (just after the first paint)."""


# ---- results of requests ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignInOptionsLoaded:
    """How this server lets people in (GetSignInOptions)."""

    passwords: bool
    sign_up: bool
    provider: Provider | None


@dataclass(frozen=True, slots=True)
class ProviderCodeReady:
    """The provider gave the device flow number `flow` its code to show."""

    flow: int
    code: ProviderCode


@dataclass(frozen=True, slots=True)
class SignedIn:
    me: Person


@dataclass(frozen=True, slots=True)
class SignInFailed:
    error: str


@dataclass(frozen=True, slots=True)
class SignedOut:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ChatsLoading:
    """MyChats is asked (ChatsLoaded, or ChatsLoadFailed, follows)."""


@dataclass(frozen=True, slots=True)
class ChatsLoadFailed:
    pass


@dataclass(frozen=True, slots=True)
class ChatsLoaded:
    chats: tuple[ChatItem, ...]
    received: tuple[InviteItem, ...]
    sent: tuple[InviteItem, ...]


@dataclass(frozen=True, slots=True)
class HistoryLoaded:
    chat_id: int
    lines: tuple[Line, ...]  # oldest first
    has_more: bool


@dataclass(frozen=True, slots=True)
class MembersLoaded:
    chat_id: int
    members: tuple[Person, ...]


@dataclass(frozen=True, slots=True)
class PresenceLoaded:
    """Members' presence and read positions, from GetChat."""

    chat_id: int
    read: dict[int, int]
    presence: dict[int, PresenceItem]


@dataclass(frozen=True, slots=True)
class PeersLoaded:
    """The other person of each personal conversation (chat id -> person)."""

    peers: dict[int, Person]
    presence: dict[int, PresenceItem]


@dataclass(frozen=True, slots=True)
class ReadMoved:
    chat_id: int
    user_id: int
    last_read_id: int


@dataclass(frozen=True, slots=True)
class TypingSeen:
    chat_id: int
    person: Person


@dataclass(frozen=True, slots=True)
class TypingExpired:
    serial: int


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    user_id: int
    presence: PresenceItem


@dataclass(frozen=True, slots=True)
class SearchResults:
    request: int
    results: tuple[Person, ...]


@dataclass(frozen=True, slots=True)
class MessagesFound:
    request: int
    hits: tuple[FoundMessage, ...]


@dataclass(frozen=True, slots=True)
class ShowMessage:
    """The chat's history is loaded down to this message: scroll to it."""

    chat_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed; `text` says why, for the status bar."""

    text: str


@dataclass(frozen=True, slots=True)
class Notice:
    text: str


@dataclass(frozen=True, slots=True)
class NoticeExpired:
    """The notice with this serial has been shown long enough."""

    serial: int


# ---- the live stream ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    connection: Connection


@dataclass(frozen=True, slots=True)
class LimitsKnown:
    """The server's limits, from its Ready frame."""

    max_message_chars: int


@dataclass(frozen=True, slots=True)
class MessageArrived:
    line: Line


@dataclass(frozen=True, slots=True)
class MessageChanged:
    """A message as it is after an edit, a delete or a reaction (a
    `message_changed` frame, or the answer to my own change)."""

    line: Line
    from_stream: bool = True  # False: the answer to my own request


@dataclass(frozen=True, slots=True)
class Acked:
    client_message_id: str
    line: Line


@dataclass(frozen=True, slots=True)
class SendRejected:
    client_message_id: str
    chat_id: int
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class InviteArrived:
    invite: InviteItem


@dataclass(frozen=True, slots=True)
class InviteAnswered:
    invite_id: int
    accepted: bool
    by_me: bool
    chat: ChatItem | None
    who: str


@dataclass(frozen=True, slots=True)
class ChatJoined:
    chat: ChatItem


@dataclass(frozen=True, slots=True)
class ChatLeft:
    chat_id: int


@dataclass(frozen=True, slots=True)
class MemberChanged:
    chat_id: int
    person: Person
    joined: bool


@dataclass(frozen=True, slots=True)
class ChatUpdated:
    """Renamed, or a new topic (the chat as it is now)."""

    chat_id: int
    name: str
    topic: str
    owner_id: int


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    chat_id: int
    person: Person
    by: Person


@dataclass(frozen=True, slots=True)
class PersonUpdated:
    """Someone I share a chat with (or I) has a new display name."""

    person: Person


# ---- calls ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallUpdated:
    """A call of one of my chats as it is now (the server's Call frame)."""

    call: CallItem


@dataclass(frozen=True, slots=True)
class CallSignalArrived:
    """An SDP offer or answer from another participant, for my media."""

    call_id: str
    from_id: int
    sdp_type: str
    sdp: str


@dataclass(frozen=True, slots=True)
class CallRefused:
    call_id: str
    chat_id: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class CallLinkChanged:
    """My media link to one participant: connecting, connected, failed, closed."""

    call_id: str
    user_id: int
    state: str


@dataclass(frozen=True, slots=True)
class CallLevels:
    """Audio levels (0..1) and connection quality of the others, a few times a second."""

    call_id: str
    levels: dict[int, float]
    quality: dict[int, str]


Action = (
    Key
    | PaneResized
    | Submit
    | InputChanged
    | OpenChat
    | Wheel
    | SignInSubmit
    | Started
    | SignInOptionsLoaded
    | ProviderCodeReady
    | SignedIn
    | SignInFailed
    | SignedOut
    | ChatsLoaded
    | HistoryLoaded
    | MembersLoaded
    | SearchResults
    | PresenceLoaded
    | PeersLoaded
    | ReadMoved
    | TypingSeen
    | TypingExpired
    | PresenceChanged
    | MessagesFound
    | ShowMessage
    | Failed
    | Notice
    | NoticeExpired
    | ConnectionChanged
    | MessageArrived
    | MessageChanged
    | Acked
    | SendRejected
    | ChatsLoading
    | ChatsLoadFailed
    | LimitsKnown
    | InviteArrived
    | InviteAnswered
    | ChatJoined
    | ChatLeft
    | MemberChanged
    | ChatUpdated
    | MemberRemoved
    | PersonUpdated
    | CallUpdated
    | CallSignalArrived
    | CallRefused
    | CallLinkChanged
    | CallLevels
)
