"""The runner's table of effect handlers covers every effect."""

from __future__ import annotations

from typing import get_args

from crab.tui import effects as fx
from crab.tui.effect_handlers import HANDLERS


def test_every_effect_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(get_args(fx.Effect))
