"""Room admin and profile in the whole client, headless, against a real
server: the owner renames, sets the topic, lists and removes members,
changes their name and password; another member sees it all live."""

from __future__ import annotations

from pathlib import Path

import pytest
from grpclib import GRPCError
from grpclib.const import Status

from crab.client.connection import CrabClient
from crab.core.app import Crab
from crab.tui.state import Asking, Focus
from crab.tui.views.panels import header, names_panel
from tests.helpers.server import PASSWORD
from tests.integration.test_app_headless import F2, Driver, person


def shown(fragments: list[tuple[str, str]]) -> str:
    return "".join(f[1] for f in fragments)


async def members(driver: Driver) -> set[str]:
    state = driver.state
    return {p.username for p in state.history(state.active_chat).members}


@pytest.mark.timeout(90)
async def test_the_owner_runs_the_room(crab: Crab, tmp_path: Path) -> None:
    carol = CrabClient("127.0.0.1", crab.port)
    try:
        await carol.sign_up("carol", PASSWORD)
        async with (
            person(crab, tmp_path / "alice") as alice,
            person(crab, tmp_path / "bob") as bob,
        ):
            await alice.sign_up("alice")
            await bob.sign_up("bob")
            await alice.say("/create ops")
            await alice.until(lambda s: s.chat(s.active_chat) is not None)
            await alice.say("/invite bob")
            await alice.until(lambda s: "invited bob" in s.notice)
            await alice.say("/invite carol")
            await alice.until(lambda s: "invited carol" in s.notice)
            await bob.until(lambda s: len(s.invites) == 1)
            bob.type(F2)
            await bob.until(lambda s: s.focus is Focus.INVITES)
            await bob.say("/accept")
            await bob.until(lambda s: any(c.name == "ops" for c in s.chats))
            (invite,) = (await carol.my_invites()).received
            await carol.answer_invite(invite.id, True)
            await alice.until(lambda s: len(s.history(s.active_chat).members) == 3)
            await bob.until(lambda s: len(s.history(s.active_chat).members) == 3)

            # Bob is a member, not the owner: told so, nothing asked of the server.
            await bob.say("/rename mine")
            await bob.until(lambda s: "only the room's owner (alice)" in s.notice)

            await alice.say("/rename operations")
            await bob.until(lambda s: [c.name for c in s.chats] == ["operations"])
            await alice.say("/topic deploys on friday")
            state = await bob.until(lambda s: s.chats[0].topic == "deploys on friday")
            assert "deploys on friday" in shown(header(state))
            assert "#operations" in shown(header(state))

            await alice.say("/names")
            state = await alice.until(lambda s: s.focus is Focus.NAMES)
            listed = shown(names_panel(state))
            assert " *● alice" in listed and "bob" in listed and "carol" in listed
            alice.type("\x1b")  # Esc: back to the messages
            await alice.until(lambda s: s.focus is Focus.INPUT)

            await alice.say("/kick carol")
            await alice.until(lambda s: "removed carol" in s.notice)
            await bob.until(lambda s: "alice removed carol from #operations" in s.notice)
            assert await members(bob) == {"alice", "bob"}
            await alice.until(lambda s: len(s.history(s.active_chat).members) == 2)
            room = alice.state.active_chat
            assert room is not None
            with pytest.raises(GRPCError) as err:
                await carol.chat(room)
            assert err.value.status is Status.NOT_FOUND

            await alice.say("/nick Alice Liddell")
            await bob.until(
                lambda s: any(
                    p.display_name == "Alice Liddell" for p in s.history(s.active_chat).members
                )
            )

            await alice.say("/password")
            await alice.until(lambda s: s.asking is Asking.CURRENT_PASSWORD)
            await alice.say("secret-pass")
            await alice.until(lambda s: s.asking is Asking.NEW_PASSWORD)
            await alice.say("a-new-secret-pass")
            await alice.until(lambda s: "password changed" in s.notice)
            assert alice.state.asking is None and alice.state.current_password == ""
            typed = list(alice.app.message_line.buffer.history.get_strings())
            assert "/password" in typed
            assert not [t for t in typed if "secret-pass" in t]  # never in the history
            assert alice.state.outbox == ()
    finally:
        carol.close()
    # The new password signs in; the old one does not.
    check = CrabClient("127.0.0.1", crab.port)
    try:
        with pytest.raises(GRPCError):
            await check.sign_in("alice", "secret-pass")
        await check.sign_in("alice", "a-new-secret-pass")
    finally:
        check.close()
