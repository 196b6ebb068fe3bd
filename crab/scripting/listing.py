"""`crab chats` and `crab invites`: what I am in and what waits for me."""

from __future__ import annotations

import json

from crab.scripting import records
from crab.scripting.common import Target, signed_in, write_line


async def list_chats(target: Target, as_json: bool) -> None:
    async with signed_in(target) as account:
        chats = await account.call(account.client.my_chats)
    chats = sorted(chats, key=lambda s: s.chat.id if s.chat else 0)
    if as_json:
        write_line(json.dumps([records.chat_summary(s) for s in chats], ensure_ascii=False))
        return
    for summary in chats:
        write_line(records.chat_summary_line(summary))


async def list_invites(target: Target, as_json: bool) -> None:
    async with signed_in(target) as account:
        invites = await account.call(account.client.my_invites)
    if as_json:
        found = {
            "received": [records.invite(i) for i in invites.received],
            "sent": [records.invite(i) for i in invites.sent],
        }
        write_line(json.dumps(found, ensure_ascii=False))
        return
    for invite in invites.received:
        write_line(records.invite_line(invite, received=True))
    for invite in invites.sent:
        write_line(records.invite_line(invite, received=False))
