"""The invites panel: pick one, accept or reject it."""

from __future__ import annotations

from dataclasses import replace

from crab.tui import actions as a
from crab.tui import effects as fx
from crab.tui.keys import Command
from crab.tui.reducers import Update
from crab.tui.state import AppState


def reduce(state: AppState, action: a.Action) -> Update | None:
    count = len(state.invites)
    match action:
        case a.Key(command=Command.SELECT_UP):
            return Update(replace(state, invite_selected=max(0, state.invite_selected - 1)))
        case a.Key(command=Command.SELECT_DOWN):
            selected = min(max(0, count - 1), state.invite_selected + 1)
            return Update(replace(state, invite_selected=selected))
        case a.Key(command=Command.ACCEPT | Command.REJECT as command):
            if not count:
                return Update(replace(state, notice="no pending invites"))
            invite = state.invites[min(state.invite_selected, count - 1)]
            return Update(state, (fx.AnswerInvite(invite.id, command == Command.ACCEPT),))
    return None
