"""The gRPC servicers for requests and replies. Each method only
translates: read the caller, call one service, convert the answer."""

from __future__ import annotations

from grpclib.const import Cardinality, Handler
from grpclib.server import Stream

from crab.core.api import convert, upb_answers
from crab.core.api.auth import caller, peer_address
from crab.core.services.accounts import Accounts
from crab.core.services.chats import Chats
from crab.core.services.invites import Invites
from crab.core.services.message_changes import MessageChanges
from crab.core.services.people import People
from crab.proto.crab import v1 as pb


class AccountsServicer(pb.AccountsBase):
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def get_sign_in_options(self, message: pb.Empty) -> pb.SignInOptions:
        return convert.sign_in_options(self._accounts)

    async def sign_in_with_provider(self, message: pb.ProviderSignInRequest) -> pb.Tokens:
        found = await self._accounts.sign_in_with_provider(message.id_token, peer_address())
        return convert.tokens(found)

    async def sign_up(self, message: pb.SignUpRequest) -> pb.Tokens:
        tokens = await self._accounts.sign_up(
            message.username, message.password, message.display_name, peer_address()
        )
        return convert.tokens(tokens)

    async def sign_in(self, message: pb.SignInRequest) -> pb.Tokens:
        found = await self._accounts.sign_in(message.username, message.password, peer_address())
        return convert.tokens(found)

    async def refresh(self, message: pb.RefreshRequest) -> pb.Tokens:
        return convert.tokens(await self._accounts.refresh(message.refresh_token))

    async def sign_out(self, message: pb.SignOutRequest) -> pb.Empty:
        await self._accounts.sign_out(caller(), message.everywhere)
        return pb.Empty()

    async def who_am_i(self, message: pb.Empty) -> pb.User:
        return convert.user(await self._accounts.who_am_i(caller()))

    async def set_display_name(self, message: pb.SetDisplayNameRequest) -> pb.User:
        return convert.user(
            await self._accounts.profile.set_display_name(caller(), message.display_name)
        )

    async def change_password(self, message: pb.ChangePasswordRequest) -> pb.Empty:
        m = message
        await self._accounts.profile.change_password(
            caller(), m.current_password, m.new_password, peer_address()
        )
        return pb.Empty()


class UsersServicer(pb.UsersBase):
    def __init__(self, people: People) -> None:
        self._people = people

    async def get_user(self, message: pb.GetUserRequest) -> pb.User:
        caller()
        return convert.user(await self._people.get(message.user_id))

    async def search_users(self, message: pb.SearchUsersRequest) -> pb.UserList:
        caller()
        found = await self._people.search(message.query, message.limit)
        return pb.UserList(users=[convert.user(u) for u in found])


class ChatsServicer(pb.ChatsBase):
    def __init__(self, chats: Chats, changes: MessageChanges) -> None:
        self._chats = chats
        self._changes = changes

    async def my_chats(self, message: pb.Empty) -> pb.ChatList:
        summaries = await self._chats.mine(caller())
        return pb.ChatList(chats=[convert.summary(s) for s in summaries])

    async def get_chat(self, message: pb.ChatRequest) -> pb.ChatDetail:
        return convert.details(await self._chats.get(caller(), message.chat_id))

    async def create_room(self, message: pb.CreateRoomRequest) -> pb.Chat:
        room = await self._chats.create_room(
            caller(), message.name, message.request_id, peer_address()
        )
        return convert.chat(room)

    async def leave_chat(self, message: pb.ChatRequest) -> pb.Empty:
        await self._chats.leave(caller(), message.chat_id)
        return pb.Empty()

    def __mapping__(self) -> dict[str, Handler]:
        mapping: dict[str, Handler] = super().__mapping__()
        # History pages are encoded by upb (upb_answers.py): far cheaper for 50 messages.
        mapping["/crab.v1.Chats/GetMessages"] = Handler(
            self._get_messages, Cardinality.UNARY_UNARY, pb.GetMessagesRequest, pb.MessagePage
        )
        mapping["/crab.v1.Chats/GetChanges"] = Handler(
            self._get_changes, Cardinality.UNARY_UNARY, pb.GetChangesRequest, pb.MessagePage
        )
        return mapping

    async def _get_messages(self, stream: Stream[pb.GetMessagesRequest, bytes]) -> None:
        request = await stream.recv_message()
        assert request is not None
        found = await self._chats.history(
            caller(), request.chat_id, request.before_id, request.limit
        )
        await stream.send_message(upb_answers.page(found))  # bytes: PassThroughCodec

    async def search_messages(self, message: pb.SearchMessagesRequest) -> pb.SearchResults:
        m = message
        found = await self._chats.search.find(caller(), m.query, m.chat_id, m.limit, m.page_token)
        return convert.search_results(found)

    async def mark_read(self, message: pb.MarkReadRequest) -> pb.Empty:
        await self._chats.mark_read(caller(), message.chat_id, message.message_id)
        return pb.Empty()

    async def rename_room(self, message: pb.RenameRoomRequest) -> pb.Chat:
        m = message
        return convert.chat(
            await self._chats.rooms.rename(caller(), m.chat_id, m.name, m.request_id)
        )

    async def set_topic(self, message: pb.SetTopicRequest) -> pb.Chat:
        m = message
        found = await self._chats.rooms.set_topic(caller(), m.chat_id, m.topic, m.request_id)
        return convert.chat(found)

    async def remove_member(self, message: pb.RemoveMemberRequest) -> pb.Empty:
        m = message
        await self._chats.rooms.remove_member(caller(), m.chat_id, m.user_id, m.request_id)
        return pb.Empty()

    async def edit_message(self, message: pb.EditMessageRequest) -> pb.Message:
        m = message
        found = await self._changes.edit(caller(), m.chat_id, m.message_id, m.text, m.request_id)
        return convert.message(found)

    async def delete_message(self, message: pb.DeleteMessageRequest) -> pb.Message:
        m = message
        found = await self._changes.delete(caller(), m.chat_id, m.message_id, m.request_id)
        return convert.message(found)

    async def react(self, message: pb.ReactRequest) -> pb.Message:
        m = message
        found = await self._changes.react(caller(), m.chat_id, m.message_id, m.emoji, m.request_id)
        return convert.message(found)

    async def _get_changes(self, stream: Stream[pb.GetChangesRequest, bytes]) -> None:
        request = await stream.recv_message()
        assert request is not None
        found = await self._changes.changes(
            caller(), request.chat_id, request.after_change_seq, request.limit
        )
        await stream.send_message(upb_answers.page(found))  # bytes: PassThroughCodec


class InvitesServicer(pb.InvitesBase):
    def __init__(self, invites: Invites) -> None:
        self._invites = invites

    async def my_invites(self, message: pb.Empty) -> pb.InviteList:
        received, sent = await self._invites.pending(caller())
        return pb.InviteList(
            received=[convert.invite(i) for i in received], sent=[convert.invite(i) for i in sent]
        )

    async def invite_to_room(self, message: pb.RoomInviteRequest) -> pb.Invite:
        m = message
        found = await self._invites.to_room(
            caller(), m.chat_id, m.user_id, m.request_id, peer_address()
        )
        return convert.invite(found)

    async def invite_to_direct(self, message: pb.DirectInviteRequest) -> pb.Invite:
        found = await self._invites.to_direct(
            caller(), message.user_id, message.request_id, peer_address()
        )
        return convert.invite(found)

    async def answer_invite(self, message: pb.AnswerInviteRequest) -> pb.InviteAnswer:
        m = message
        found = await self._invites.answer(caller(), m.invite_id, m.accept, m.request_id)
        return convert.answer(found)
