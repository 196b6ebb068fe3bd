"""The store: holds the state, runs the reducer on each action, hands the
effects to whoever performs them, and tells subscribers (the renderer)."""

from __future__ import annotations

from collections.abc import Callable

from crab.tui.actions import Action
from crab.tui.effects import Effect
from crab.tui.reducers import Update
from crab.tui.reducers.app import reduce
from crab.tui.state import AppState

Listener = Callable[[AppState], None]
EffectHandler = Callable[[Effect], None]


class Store:
    def __init__(
        self,
        state: AppState,
        reducer: Callable[[AppState, Action], Update] = reduce,
    ) -> None:
        self.state = state
        self._reducer = reducer
        self._listeners: list[Listener] = []
        self._effects: EffectHandler | None = None
        self.actions = 0  # how many actions were reduced (tests wait on it)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def on_effect(self, handler: EffectHandler) -> None:
        self._effects = handler

    def dispatch(self, action: Action) -> None:
        update = self._reducer(self.state, action)
        self.actions += 1
        changed = update.state is not self.state
        self.state = update.state
        if changed:
            for listener in tuple(self._listeners):
                listener(self.state)
        if self._effects is not None:
            for effect in update.effects:
                self._effects(effect)
