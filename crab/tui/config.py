"""config.toml in the client's config directory: the defaults a person
writes once (bell, notifications, timestamps, layout, mouse, keys). Every
setting is optional; an unknown or bad one stops `crab chat` with one line
that names it (ConfigError), never a traceback. Command-line options
override the file; /bell's saved choice (settings.json) overrides its bell."""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from prompt_toolkit.key_binding.key_bindings import _parse_key

from crab.tui.keys import KEYS, Command, KeyBinding
from crab.tui.state import Bell, Notify

CONFIG_NAME = "config.toml"
MAX_CONFIG_BYTES = 64 * 1024
MAX_KEYS_PER_COMMAND = 4
E = TypeVar("E", bound=enum.Enum)
SIDEBAR_WIDTHS = (10, 60)  # the chat list's columns, when set (0: as the terminal allows)


class ConfigError(Exception):
    """A one-line reason the config file cannot be used."""


@dataclass(frozen=True, slots=True)
class ChatConfig:
    bell: Bell | None = None  # None: /bell's saved choice, else mentions
    notify: Notify = Notify.OFF
    seconds: bool = False  # timestamps HH:MM:SS instead of HH:MM
    sidebar_width: int = 0  # 0: 26 columns, 20 on narrower terminals
    mouse: bool = True
    # Call devices by name (docs/calls.md); "" : the default (--mic etc. win).
    mic: str = ""
    speaker: str = ""
    camera: str = ""
    # Command name -> its keys, replacing the table's (crab/tui/keys.py).
    keys: dict[Command, tuple[str, ...]] = field(default_factory=dict)


EXAMPLE = """\
# ~/.config/crab/config.toml (the directory of --config-dir); every line optional.
# bell = "mentions"        # all | mentions | off (/bell's saved choice wins)
# notify = "off"           # off | osc777 | osc9: desktop notifications for what rings
# seconds = false          # timestamps as 14:03:27
# sidebar_width = 26       # the chat list's columns (10-60; default 26, 20 when narrow)
# mouse = true             # wheel scrolls, a click opens a chat (--no-mouse: off)
# mic = "default"          # calls: a device name, "sine:440", "file:PATH" or "none"
# speaker = "default"      # a device name or "none"
# camera = "/dev/video0"   # a V4L2 device, "testsrc", "file:PATH" or "none"
# [keys]                   # a command's keys (prompt_toolkit names), replacing its own
# next_chat = ["c-n", "s-down"]
# previous_chat = ["c-p", "s-up"]
"""


MAX_DEVICE_CHARS = 200


def load_config(config_dir: Path) -> ChatConfig:
    """The file's settings; defaults when there is no file."""
    path = config_dir / CONFIG_NAME
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return ChatConfig()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read: {error.strerror or error}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse(data: dict[str, Any]) -> ChatConfig:
    config = ChatConfig()
    for name, value in data.items():
        match name:
            case "bell":
                config = replace(config, bell=_choice(Bell, name, value))
            case "notify":
                config = replace(config, notify=_choice(Notify, name, value))
            case "seconds" | "mouse":
                if not isinstance(value, bool):
                    raise ConfigError(f"{name} must be true or false")
                if name == "seconds":
                    config = replace(config, seconds=value)
                else:
                    config = replace(config, mouse=value)
            case "sidebar_width":
                low, high = SIDEBAR_WIDTHS
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int)
                    or not low <= value <= high
                ):
                    raise ConfigError(f"sidebar_width must be a number from {low} to {high}")
                config = replace(config, sidebar_width=value)
            case "mic" | "speaker" | "camera":
                if not isinstance(value, str) or not 1 <= len(value) <= MAX_DEVICE_CHARS:
                    raise ConfigError(
                        f"{name} must be a device name of 1 to {MAX_DEVICE_CHARS} characters"
                    )
                config = _device(config, name, value)
            case "keys":
                config = replace(config, keys=_keys(value))
            case _:
                raise ConfigError(f"unknown setting {name!r}")
    return config


def _device(config: ChatConfig, name: str, value: str) -> ChatConfig:
    match name:
        case "mic":
            return replace(config, mic=value)
        case "speaker":
            return replace(config, speaker=value)
    return replace(config, camera=value)


def _choice(kind: type[E], name: str, value: object) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in kind)
        raise ConfigError(f"{name} must be one of {allowed}, not {value!r}") from None


def _keys(value: object) -> dict[Command, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError("[keys] must be a table: command = [keys]")
    out: dict[Command, tuple[str, ...]] = {}
    for name, keys in value.items():
        try:
            command = Command(name)
        except ValueError:
            raise ConfigError(f"[keys]: no command {name!r}") from None
        if isinstance(keys, str):
            keys = [keys]
        if (
            not isinstance(keys, list)
            or not 1 <= len(keys) <= MAX_KEYS_PER_COMMAND
            or not all(isinstance(k, str) for k in keys)
        ):
            raise ConfigError(
                f"[keys] {name} must be a key or a list of 1 to {MAX_KEYS_PER_COMMAND} keys"
            )
        for key in keys:
            try:
                _parse_key(key)
            except ValueError:
                raise ConfigError(f"[keys] {name}: unknown key {key!r}") from None
        out[command] = tuple(keys)
    return out


def key_table(config: ChatConfig) -> tuple[KeyBinding, ...]:
    """The key table with the file's keys in place of each named command's."""
    taken = {key for keys in config.keys.values() for key in keys}
    table = []
    for b in KEYS:
        if b.command in config.keys:
            table.append(replace(b, keys=config.keys[b.command]))
            continue
        # A key the file gives another command leaves this one (F7 for
        # next_chat takes it from answering calls).
        left = tuple(k for k in b.keys if k not in taken)
        if left:
            table.append(replace(b, keys=left))
    return tuple(table)
