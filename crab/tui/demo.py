"""Starting the client somewhere other than its first screen: the supported
way for tools (`crab bench chat`, demos) to open `ChatApp` on a long chat
or as an account that has already signed in. Public: these keep their
meaning whatever the state classes under them become.

    ChatApp(server, config_dir, state=big_chat(10_000))  # no server needed
    save_session(config_dir, server, username, access, refresh)  # then `crab chat`
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from crab.tui.saved import SavedSession, SessionFile
from crab.tui.state import AppState, ChatItem, Connection, History, Line, Link, Person, Screen

WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog")


def big_chat(messages: int, seed: int = 1) -> AppState:
    """A signed-in state (alice, connected, 20 chats) whose open chat holds
    `messages` loaded messages from three people over several weeks (short
    lines, some that wrap). The same `seed` gives the same chat."""
    rng = random.Random(seed)
    people = (Person(1, "alice", "Alice"), Person(2, "bob", "Bob"), Person(3, "carol", "Carol"))
    start = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)
    lines = tuple(
        Line(
            chat_id=1,
            id=n,
            sender=people[n % 3],
            text=" ".join(rng.choice(WORDS) for _ in range(rng.choice((3, 8, 12, 40)))),
            sent_at=start + timedelta(minutes=7 * n),
            client_message_id=f"bench-{n}",
        )
        for n in range(1, messages + 1)
    )
    chats = tuple(
        ChatItem(
            id=i, is_room=i % 4 != 0, name=f"chat-{i}", last_message_id=messages if i == 1 else 0
        )
        for i in range(1, 21)
    )
    return AppState(
        server="127.0.0.1:1",
        screen=Screen.CHATS,
        me=people[0],
        connection=Connection(Link.CONNECTED),
        chats=chats,
        active_chat=1,
        histories={1: History(lines=lines, has_more=False, members=people)},
    )


def save_session(
    config_dir: Path, server: str, username: str, access_token: str, refresh_token: str
) -> None:
    """The session `crab chat --config-dir config_dir` finds for `server`, as
    it leaves one after a sign-in: the next start opens straight into the chats."""
    SessionFile(config_dir).save(SavedSession(server, username, access_token, refresh_token))
