"""A client's view of its chats built from session frames, as
docs/conversation.md tells a client to: per message id, the copy with the
highest change_seq; the cursors it resumes from."""

from __future__ import annotations

import copy
from collections.abc import Iterable

from crab.core.storage.messages import QUOTE_CHARS
from crab.proto.crab import v1 as pb


class View:
    def __init__(self) -> None:
        self.messages: dict[tuple[int, int], pb.Message] = {}
        # Per chat, the newest change_seq of a message_changed frame: only
        # those come in change order (a message replayed "as it is now" may
        # carry a change_seq newer than changes not yet received).
        self.changed_up_to: dict[int, int] = {}

    def apply(self, frames: Iterable[pb.ServerFrame]) -> None:
        for frame in frames:
            found = frame.message or frame.message_changed
            if found is None and frame.ack is not None:
                found = frame.ack.message
            if found is None:
                continue
            if frame.message_changed is not None:
                chat = found.chat_id
                self.changed_up_to[chat] = max(self.changed_up_to.get(chat, 0), found.change_seq)
            key = (found.chat_id, found.id)
            held = self.messages.get(key)
            if held is None or found.change_seq >= held.change_seq:
                self.messages[key] = found

    def chat(self, chat_id: int) -> list[pb.Message]:
        """The chat's messages, oldest first. A reply's quote is drawn from
        the message it quotes as held now (changing a message changes no
        reply to it: docs/conversation.md)."""
        out = []
        for (c, _), m in sorted(self.messages.items()):
            if c != chat_id:
                continue
            quoted = self.messages.get((c, m.reply_to_id)) if m.reply_to_id else None
            if quoted is not None and m.reply_to is not None:
                m = copy.deepcopy(m)
                assert m.reply_to is not None
                m.reply_to.deleted = quoted.deleted
                m.reply_to.text_start = quoted.text[:QUOTE_CHARS]
            out.append(m)
        return out

    def cursors(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for chat_id, message_id in self.messages:
            out[chat_id] = max(out.get(chat_id, 0), message_id)
        return out

    def changes(self) -> dict[int, int]:
        return dict(self.changed_up_to)
