"""What reducers ask for when the answer needs I/O: data only. Each has its
handler in crab/tui/effect_handlers.py, which the runner (crab/tui/runner.py)
runs as a task; the result comes back as actions."""

from __future__ import annotations

from dataclasses import dataclass, field

from crab.tui.state import CallItem, Line, Provider


@dataclass(frozen=True, slots=True)
class SignIn:
    username: str
    password: str
    sign_up: bool


@dataclass(frozen=True, slots=True)
class LoadSignInOptions:
    """Ask the server how one signs in (passwords, the identity provider)."""


@dataclass(frozen=True, slots=True)
class StartDeviceFlow:
    """Sign in with the provider (RFC 8628): ProviderCodeReady(flow, ...)
    once it gives a code, then SignedIn, or SignInFailed."""

    flow: int
    provider: Provider


@dataclass(frozen=True, slots=True)
class CancelDeviceFlow:
    """Esc on the code view: the device flow's task is cancelled."""


@dataclass(frozen=True, slots=True)
class LoadChats:
    pass


@dataclass(frozen=True, slots=True)
class LoadHistory:
    chat_id: int
    before: int  # 0: the newest page


@dataclass(frozen=True, slots=True)
class LoadMembers:
    chat_id: int


@dataclass(frozen=True, slots=True)
class LoadPeers:
    """The other person of these personal conversations, and their presence."""

    chat_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SendTyping:
    """I am typing in this chat (the handler sends at most one per few seconds)."""

    chat_id: int


@dataclass(frozen=True, slots=True)
class ReportActivity:
    """Away after idle minutes; back (away=False) on a key press."""

    away: bool


@dataclass(frozen=True, slots=True)
class ExpireTyping:
    """Dispatch TypingExpired(serial) after `after` seconds."""

    serial: int
    after: float


@dataclass(frozen=True, slots=True)
class Send:
    line: Line


@dataclass(frozen=True, slots=True)
class CreateRoom:
    name: str


@dataclass(frozen=True, slots=True)
class InviteToRoom:
    chat_id: int
    username: str


@dataclass(frozen=True, slots=True)
class InviteToDirect:
    username: str


@dataclass(frozen=True, slots=True)
class AnswerInvite:
    invite_id: int
    accept: bool


@dataclass(frozen=True, slots=True)
class LeaveChat:
    chat_id: int


@dataclass(frozen=True, slots=True)
class SearchUsers:
    request: int
    query: str


@dataclass(frozen=True, slots=True)
class SearchMessages:
    request: int
    query: str


@dataclass(frozen=True, slots=True)
class OpenAt:
    """Load the chat's history down to the message (and a little before it)."""

    chat_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class MarkRead:
    chat_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class EditMessage:
    chat_id: int
    message_id: int
    text: str


@dataclass(frozen=True, slots=True)
class DeleteMessage:
    chat_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class React:
    """Toggles my reaction with `emoji` on the message."""

    chat_id: int
    message_id: int
    emoji: str


@dataclass(frozen=True, slots=True)
class Copy:
    """Puts text on the system clipboard if one is reachable, else shows it."""

    text: str


@dataclass(frozen=True, slots=True)
class SignOut:
    pass


@dataclass(frozen=True, slots=True)
class Bell:
    pass


@dataclass(frozen=True, slots=True)
class Notify:
    """A desktop notification (config.toml's notify; crab/tui/notify.py
    makes the text inert): the chat, or "crab", and what came."""

    title: str
    body: str


@dataclass(frozen=True, slots=True)
class SaveMuted:
    """Keep the muted chats (/mute) of this server for the next start."""

    chat_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SaveBell:
    """Keep the /bell choice for the next start (the settings file)."""

    bell: str


@dataclass(frozen=True, slots=True)
class ExpireNotice:
    """Dispatch NoticeExpired(serial) after `after` seconds."""

    serial: int
    after: float


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Cut the reconnect wait short: try now."""


@dataclass(frozen=True, slots=True)
class RenameRoom:
    chat_id: int
    name: str


@dataclass(frozen=True, slots=True)
class SetTopic:
    chat_id: int
    topic: str


@dataclass(frozen=True, slots=True)
class RemoveMember:
    chat_id: int
    user_id: int
    username: str


@dataclass(frozen=True, slots=True)
class SetDisplayName:
    name: str


@dataclass(frozen=True, slots=True)
class ChangePassword:
    # Never in a repr (logs, tracebacks); the effect is gone once the call is.
    current: str = field(repr=False)
    new: str = field(repr=False)


# ---- calls ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallFrame:
    """A call frame to the server: start, accept, decline, leave."""

    op: str
    chat_id: int
    call_id: str = ""
    video: bool = False


@dataclass(frozen=True, slots=True)
class MediaJoin:
    """Start my media for this call: links to those in it."""

    call: CallItem


@dataclass(frozen=True, slots=True)
class MediaUpdate:
    """Who is in the call changed: open links to newcomers, close the others."""

    call: CallItem


@dataclass(frozen=True, slots=True)
class MediaSignal:
    call_id: str
    from_id: int
    sdp_type: str
    sdp: str


@dataclass(frozen=True, slots=True)
class MediaLeave:
    pass


@dataclass(frozen=True, slots=True)
class MediaControls:
    """Microphone muted, camera on."""

    muted: bool
    camera: bool


Effect = (
    SignIn
    | LoadSignInOptions
    | StartDeviceFlow
    | CancelDeviceFlow
    | LoadChats
    | LoadHistory
    | LoadMembers
    | LoadPeers
    | SendTyping
    | ExpireTyping
    | ReportActivity
    | Send
    | CreateRoom
    | InviteToRoom
    | InviteToDirect
    | AnswerInvite
    | LeaveChat
    | SearchUsers
    | SearchMessages
    | OpenAt
    | MarkRead
    | EditMessage
    | DeleteMessage
    | React
    | Copy
    | SignOut
    | Bell
    | Notify
    | SaveMuted
    | SaveBell
    | ExpireNotice
    | Quit
    | Reconnect
    | RenameRoom
    | SetTopic
    | RemoveMember
    | SetDisplayName
    | ChangePassword
    | CallFrame
    | MediaJoin
    | MediaUpdate
    | MediaSignal
    | MediaLeave
    | MediaControls
)
