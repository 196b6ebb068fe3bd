"""Nested reducers. Each takes (state, action) and returns an Update (a new
state, possibly with effects to start) or None: not handled here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from crab.tui.actions import Action
from crab.tui.effects import Effect
from crab.tui.state import AppState


@dataclass(frozen=True, slots=True)
class Update:
    state: AppState
    effects: tuple[Effect, ...] = ()


Reducer = Callable[[AppState, Action], Update | None]
