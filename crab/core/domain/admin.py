"""What an admin sees of accounts, sign-in sessions and rooms (`crab user`,
`crab room`): plain records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# A deleted account keeps its row (its messages point at it) under a name
# no one can sign up with ("~" is not a username character): the old one is free.
DELETED_NAME_PREFIX = "~deleted-"
DELETED_DISPLAY_NAME = "deleted account"
DELETED_PASSWORD = "!deleted"  # like "!sso": never matches a password
ACCOUNT_DISABLED = "account disabled by an admin"
ACCOUNT_DELETED = "this account was deleted"


def sign_in_refusal(disabled_at: datetime | None, deleted_at: datetime | None) -> str | None:
    """Why an account may not sign in (nor refresh), or None."""
    if deleted_at is not None:
        return ACCOUNT_DELETED
    return ACCOUNT_DISABLED if disabled_at is not None else None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    username: str
    display_name: str
    created_at: datetime
    disabled_at: datetime | None
    deleted_at: datetime | None
    # An identity provider's account ("!sso"): no password to reset.
    has_password: bool

    @property
    def state(self) -> str:
        if self.deleted_at is not None:
            return "deleted"
        return "disabled" if self.disabled_at is not None else "active"


@dataclass(frozen=True, slots=True)
class SignInSession:
    id: int
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


@dataclass(frozen=True, slots=True)
class RoomInfo:
    id: int
    name: str
    owner: str  # the owner's username
    members: int
    messages: int
    created_at: datetime
