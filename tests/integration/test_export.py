"""`crab export CHAT --format jsonl`: a chat's history as JSON lines, oldest
first, each message as it is now (edits, tombstones, replies, reactions,
any text), read in pages; an unknown chat or format is a message, not a
traceback."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from crab.client.connection import CrabClient, SessionStream
from crab.config import Settings
from crab.core.app import Crab
from crab.core.storage import export
from crab.proto.crab import v1 as pb
from tests.helpers.chats import join_room
from tests.helpers.process import run_crab
from tests.helpers.server import ClientFactory

pytestmark = pytest.mark.slow  # crab export runs as a process

ROOM = "export ü 🦀"
TRICKY = 'ünïcode 🦀, "quotes", a \\ backslash,\na second line, \u2028 \u2029 separators'


async def send_acked(live: SessionStream, chat: int, text: str, reply_to: int = 0) -> int:
    cid = await live.send(chat, text, reply_to_id=reply_to)

    def answers(frame: pb.ServerFrame) -> bool:
        found = frame.ack or frame.send_error
        return found is not None and found.client_message_id == cid

    frame = await live.wait_for(answers)
    assert frame.ack is not None, frame.send_error
    return frame.ack.message.id


async def conversation(alice: CrabClient, bob: CrabClient) -> int:
    """A room with a reply, an edit, a delete and reactions; its id."""
    room = await join_room(alice, bob, ROOM)
    async with alice.session() as mine, bob.session() as theirs:
        first = await send_acked(mine, room, "hello")
        await send_acked(mine, room, TRICKY)
        await send_acked(theirs, room, "a reply", reply_to=first)
        gone = await send_acked(mine, room, "soon deleted")
        await send_acked(theirs, room, "the last")
    await alice.edit_message(room, first, "hello, edited")
    await alice.delete_message(room, gone)
    await bob.react(room, 2, "👍")
    await alice.react(room, 2, "👍")
    await bob.react(room, 2, "🎉")
    return room


def where(settings: Settings) -> tuple[str, ...]:
    found = ("--data-dir", str(settings.data_dir))
    return found + (("--database", settings.database_url) if settings.database_url else ())


def exported(settings: Settings, *args: str) -> list[dict[str, Any]]:
    done = run_crab("export", *args, "--format", "jsonl", *where(settings))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def test_export_writes_a_chat_as_json_lines_as_it_is_now(
    crab: Crab, connect: ClientFactory, settings: Settings, tmp_path: Path
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await conversation(alice, bob)

    lines = exported(settings, ROOM)
    assert [m["id"] for m in lines] == [1, 2, 3, 4, 5]
    assert {m["chat_id"] for m in lines} == {room}
    hello, tricky, reply, gone, last = lines
    assert hello["text"] == "hello, edited"
    assert hello["edited_at"] is not None and hello["edited_at"].endswith("Z")
    assert hello["sender"] == {
        "id": alice.user.id,
        "username": alice.user.username,
        "display_name": alice.user.display_name,
    }
    assert tricky["text"] == TRICKY
    assert tricky["reactions"] == [
        {"emoji": "👍", "users": [bob.user.username, alice.user.username]},
        {"emoji": "🎉", "users": [bob.user.username]},
    ]
    assert reply["reply_to"] == 1 and reply["sender"]["username"] == bob.user.username
    assert gone["deleted"] is True and gone["text"] == ""
    assert last == {
        "chat_id": room,
        "id": 5,
        "sent_at": last["sent_at"],
        "sender": last["sender"],
        "text": "the last",
        "edited_at": None,
        "deleted": False,
        "reply_to": None,
        "reactions": [],
    }
    times = [m["sent_at"] for m in lines]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)

    # By id, to a file: the same lines, the owner's alone.
    out = tmp_path / "room.jsonl"
    done = run_crab("export", str(room), "--format", "jsonl", "--output", str(out),
                    *where(settings))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == lines
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    again = run_crab("export", str(room), "--format", "jsonl", "--output", str(out),
                     *where(settings))  # fmt: skip
    assert again.returncode != 0 and "--force" in again.stderr
    nowhere = run_crab("export", str(room), "--format", "jsonl", "--output", "/proc/crab.jsonl",
                       *where(settings))  # fmt: skip
    assert nowhere.returncode != 0 and "cannot write there" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


async def test_export_reads_in_pages_in_order(
    crab: Crab, connect: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    room = await conversation(alice, bob)
    whole = [json.loads(line) async for line in export.chat_lines(crab.database, room)]
    monkeypatch.setattr(export, "EXPORT_PAGE", 2)  # 5 messages: pages of 2, 2, 1
    paged = [json.loads(line) async for line in export.chat_lines(crab.database, room)]
    assert paged == whole
    assert [m["id"] for m in paged] == [1, 2, 3, 4, 5]


async def test_export_of_an_unknown_chat_or_format_says_so(
    crab: Crab, connect: ClientFactory, settings: Settings
) -> None:
    alice, bob = await connect("alice"), await connect("bob")
    await join_room(alice, bob, "twin")
    await join_room(alice, bob, "twin")
    cases = {
        ("999999", "--format", "jsonl"): "no chat with id 999999",
        ("nowhere", "--format", "jsonl"): "no room named 'nowhere'",
        ("twin", "--format", "jsonl"): "2 rooms are named 'twin'",
        ("twin", "--format", "csv"): "Invalid value for '--format': 'csv'",
        ("twin",): "Missing option '--format'",
    }
    for args, message in cases.items():
        done = run_crab("export", *args, *where(settings))
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stdout == ""
