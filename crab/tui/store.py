"""The store: holds the state, runs the reducer on each action, hands the
effects to whoever performs them, and tells subscribers (the renderer)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from crab.tui.state import AppState

if TYPE_CHECKING:
    from crab.tui.actions import Action
    from crab.tui.effects import Effect
    from crab.tui.reducers import Update

    Reducer = Callable[[AppState, Action], Update]

Listener = Callable[[AppState], None]
EffectHandler = Callable[["Effect"], None]


class Store:
    def __init__(self, state: AppState, reducer: Reducer | None = None) -> None:
        self.state = state
        # None: the root reducer, imported when first needed. Drawing the
        # first screen needs only the state; the reducers, actions and
        # effects (some 50 dataclasses, tens of ms to define) can come after.
        self._reducer = reducer
        self._listeners: list[Listener] = []
        self._effects: EffectHandler | None = None
        self.actions = 0  # how many actions were reduced (tests wait on it)

    def load_reducer(self) -> Reducer:
        if self._reducer is None:
            from crab.tui.reducers.app import reduce

            self._reducer = reduce
        return self._reducer

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def on_effect(self, handler: EffectHandler) -> None:
        self._effects = handler

    def dispatch(self, action: Action) -> None:
        update = self.load_reducer()(self.state, action)
        self.actions += 1
        changed = update.state is not self.state
        self.state = update.state
        if changed:
            for listener in tuple(self._listeners):
                listener(self.state)
        if self._effects is not None:
            for effect in update.effects:
                self._effects(effect)
