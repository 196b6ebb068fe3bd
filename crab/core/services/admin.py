"""An admin's acts on accounts and rooms (`crab user ...`, `crab room ...`),
run by the CLI straight on the database (docs/admin.md).

Each act is one transaction. It also publishes what a live stream would
be told (SessionEnded, ChatLeft) on this process's broker: that reaches
running servers only when the broker is shared (RabbitMQ). Whatever the
broker, servers notice within `--session-check-interval` seconds (they
re-check their open streams' sessions and chats: live.Hub), and every
call checks its session in the database at once."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from crab.core.broker.base import Broker
from crab.core.clock import now
from crab.core.domain import events as ev
from crab.core.domain.admin import Account, RoomInfo, SignInSession
from crab.core.domain.models import User
from crab.core.domain.validation import check_password, clean_room_name, normalize_username
from crab.core.services.passwords import Passwords
from crab.core.storage import chats, identities, invites, rooms, sessions, users
from crab.core.storage.database import Database
from crab.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_ID = 2**63 - 1  # the database's largest id


class Admin:
    def __init__(self, database: Database, broker: Broker, passwords: Passwords) -> None:
        self._database = database
        self._broker = broker
        self._passwords = passwords

    # ---- accounts ------------------------------------------------------------

    async def accounts(self, with_deleted: bool = False) -> list[Account]:
        return await self._database.read(users.accounts, with_deleted)

    async def account(self, name: str) -> Account:
        """The account of that username; InvalidArgument or NotFound."""
        username = normalize_username(name)
        found = await self._database.read(users.account, username)
        if found is None:
            raise NotFound(f"no account named {username!r}")
        return found

    async def reset_password(self, name: str, password: str) -> Account:
        """A new password; every session of the account is signed out."""
        account = await self.account(name)
        if not account.has_password:
            raise FailedPrecondition(
                f"{account.username} signs in through the identity provider and has no "
                "password here; manage their sign-in at the provider"
            )
        check_password(password)
        new_hash = await self._passwords.hash(password)
        await self._database.write(_reset_password, account.id, new_hash)
        await self._signed_out(account.id)
        return account

    async def disable(self, name: str) -> Account:
        """No sign-in until enabled; every session signed out; the account
        and its messages stay."""
        account = await self.account(name)
        await self._database.write(_disable, account.id)
        await self._signed_out(account.id)
        return account

    async def enable(self, name: str) -> Account:
        account = await self.account(name)
        await self._database.write(users.set_disabled, account.id, None)
        return account

    async def delete(self, name: str) -> Account:
        """Sessions, identities, memberships and pending invites go; the
        messages stay in their chats, from "deleted account"; the username
        is free for a new account."""
        account = await self.account(name)
        chat_ids, gone = await self._database.write(_delete_account, account.id)
        await self._signed_out(account.id)
        for chat_id in chat_ids:
            await self._broker.publish(ev.chat_topic(chat_id), ev.MemberLeft(chat_id, gone))
        return account

    async def sessions(self, name: str) -> tuple[Account, list[SignInSession]]:
        account = await self.account(name)
        return account, await self._database.read(sessions.of_user, account.id)

    async def revoke(self, name: str, session_id: int) -> Account:
        account = await self.account(name)
        if not await self._database.write(sessions.revoke_of_user, session_id, account.id, now()):
            raise NotFound(f"{account.username} has no active session {session_id}")
        await self._broker.publish(
            ev.user_topic(account.id), ev.SessionEnded(account.id, session_id)
        )
        return account

    async def revoke_all(self, name: str) -> Account:
        account = await self.account(name)
        await self._database.write(sessions.revoke_all, account.id, now())
        await self._signed_out(account.id)
        return account

    async def _signed_out(self, user_id: int) -> None:
        await self._broker.publish(ev.user_topic(user_id), ev.SessionEnded(user_id, None))

    # ---- rooms ---------------------------------------------------------------

    async def rooms(self) -> list[RoomInfo]:
        return await self._database.read(rooms.list_all)

    async def room(self, text: str) -> RoomInfo:
        """A room by id, or by its exact name when that names one room."""
        if text.isascii() and text.isdigit() and int(text) <= MAX_ID:
            found = await self._database.read(rooms.by_id, int(text))
            if found is not None:
                return found
        name = clean_room_name(text)
        named = await self._database.read(rooms.named, name)
        if not named:
            raise NotFound(f"no room with id or name {text!r} (crab room list shows them)")
        if len(named) > 1:
            ids = ", ".join(str(r.id) for r in named)
            raise InvalidArgument(f"{len(named)} rooms are named {name!r} (ids {ids}); give an id")
        return named[0]

    async def delete_room(self, room: RoomInfo) -> list[int]:
        """Deletes the room and all stored in it; returns its members' ids."""
        member_ids = await self._database.write(rooms.delete, room.id)
        for user_id in member_ids:
            await self._broker.publish(ev.user_topic(user_id), ev.ChatLeft(user_id, room.id))
        return member_ids


# ---- the transactions ----------------------------------------------------------


def _reset_password(conn: Connection, user_id: int, new_hash: str) -> None:
    users.set_password_hash(conn, user_id, new_hash)
    sessions.revoke_all(conn, user_id, now())


def _disable(conn: Connection, user_id: int) -> None:
    # The user row first: a sign-in locks it too (users.sign_in_refusal).
    users.set_disabled(conn, user_id, now())
    sessions.revoke_all(conn, user_id, now())


def _delete_account(conn: Connection, user_id: int) -> tuple[list[int], User]:
    """(the chats they were in, the account as it shows now)."""
    when = now()
    users.mark_deleted(conn, user_id, when)
    sessions.revoke_all(conn, user_id, when)
    identities.unlink_all(conn, user_id)
    invites.delete_of_user(conn, user_id)
    gone = users.by_id(conn, user_id)
    assert gone is not None  # the row stays
    return chats.leave_all(conn, user_id), gone
