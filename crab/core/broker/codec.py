"""What crosses a real broker, as bytes: commands, events and outcomes in JSON.

The top level names its type from a small explicit registry,
`{"type": "SendMessage", "data": {...}}`; nested values are read by the
dataclasses' own annotations (so `Message.sender` comes back a `User`).
Datetimes travel as ISO 8601 with their offset (naive ones are refused),
enums by value, errors as `{"code", "message"}`, rebuilt by
`error_from_code`. Decoding ignores fields it does not know and fills
missing ones that have a default, so producers and consumers one release
apart still understand each other.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
from collections.abc import Callable
from datetime import datetime
from typing import Any, Union, cast, get_args, get_origin, get_type_hints

from crab.core.broker.base import Outcome
from crab.core.domain import commands as cmd
from crab.core.domain import events as ev
from crab.core.domain import models
from crab.core.domain.commands import Command
from crab.core.domain.events import Event
from crab.errors import error_from_code

COMMANDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        cmd.SendMessage,
        cmd.CreateRoom,
        cmd.LeaveChat,
        cmd.InviteToRoom,
        cmd.InviteToDirect,
        cmd.AnswerInvite,
        cmd.RenameRoom,
        cmd.SetTopic,
        cmd.RemoveMember,
        cmd.SetDisplayName,
        cmd.EditMessage,
        cmd.DeleteMessage,
        cmd.React,
        cmd.StartCall,
        cmd.AnswerCall,
        cmd.LeaveCall,
        cmd.StopRinging,
    )
}
EVENTS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ev.MessageCreated,
        ev.MessageChanged,
        ev.InviteReceived,
        ev.InviteAnswered,
        ev.ChatJoined,
        ev.ChatLeft,
        ev.MemberJoined,
        ev.MemberLeft,
        ev.MemberRemoved,
        ev.ChatUpdated,
        ev.UserUpdated,
        ev.SessionEnded,
        ev.CallChanged,
        ev.CallSignalled,
        ev.ReadMoved,
        ev.Typing,
        ev.PresenceChanged,
        ev.PresenceBeat,
    )
}
# What a handler may answer with (besides None).
RESULTS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        models.User,
        models.Chat,
        models.Message,
        models.ChatSummary,
        models.Invite,
        models.InviteAnswer,
        models.MessagePage,
        models.Call,
    )
}

Decoder = Callable[[Any], Any]


class CodecError(ValueError):
    """Bytes that are not a known command, event or outcome (or a value
    that cannot be encoded)."""


# ---- the three kinds of payload ---------------------------------------------


def encode_command(command: Command) -> bytes:
    return _dump(_tagged(command, COMMANDS))


def decode_command(data: bytes) -> Command:
    return cast(Command, _untagged(_load(data), COMMANDS))


def encode_event(event: Event) -> bytes:
    return _dump(_tagged(event, EVENTS))


def decode_event(data: bytes) -> Event:
    return cast(Event, _untagged(_load(data), EVENTS))


def encode_outcome(outcome: Outcome) -> bytes:
    error = outcome.error
    return _dump(
        {
            "result": None if outcome.result is None else _tagged(outcome.result, RESULTS),
            "error": None if error is None else {"code": error.code, "message": error.message},
        }
    )


def decode_outcome(data: bytes) -> Outcome:
    body = _expect(_load(data), dict)
    try:
        result, error = body["result"], body["error"]
        if error is not None:
            error = _expect(error, dict)
            code, message = _expect(error["code"], str), _expect(error["message"], str)
            return Outcome(error=error_from_code(code, message))
    except KeyError as exc:
        raise CodecError(f"outcome without {exc}") from None
    return Outcome(result=None if result is None else _untagged(result, RESULTS))


# ---- envelope ------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _load(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise CodecError(f"not JSON: {exc}") from None


def _tagged(value: Any, registry: dict[str, type[Any]]) -> dict[str, Any]:
    name = type(value).__name__
    if registry.get(name) is not type(value):
        raise CodecError(f"cannot encode {type(value).__qualname__} here")
    return {"type": name, "data": _plain(value)}


def _untagged(value: Any, registry: dict[str, type[Any]]) -> Any:
    body = _expect(value, dict)
    name = body.get("type")
    cls: Any = registry.get(name) if isinstance(name, str) else None  # a type: hashable
    if cls is None:
        raise CodecError(f"unknown type {name!r}")
    try:
        return _decoder(cls)(body.get("data"))
    except CodecError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"bad {cls.__name__}: {exc!r}") from None


# ---- values --------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A domain value as JSON-ready data."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise CodecError(f"naive datetime {value!r}: crab's times carry a timezone")
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # A field still at its default is left out (the decoder fills it):
        # a plain message carries none of the conversation's fields.
        return {
            f.name: _plain(v)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not f.default or f.default is dataclasses.MISSING
        }
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    raise CodecError(f"cannot encode {type(value).__qualname__}")


def _expect(value: Any, kind: type[Any]) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CodecError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _datetime(value: Any) -> datetime:
    when = datetime.fromisoformat(_expect(value, str))
    if when.utcoffset() is None:
        raise CodecError(f"datetime without a timezone: {value!r}")
    return when


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CodecError(f"expected a number, got {type(value).__name__}")
    return float(value)


@functools.cache
def _decoder(tp: Any) -> Decoder:
    """Reads JSON data back into the annotated type `tp`."""
    if tp in (int, str, bool):
        return functools.partial(_expect, kind=tp)
    if tp is float:
        return _number
    if tp is datetime:
        return _datetime
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return cast(Decoder, tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _decoder(next(a for a in args if a is not type(None)))
        return lambda value: None if value is None else inner(value)
    if origin is list and len(args) == 1:
        item = _decoder(args[0])
        return lambda value: [item(v) for v in _expect(value, list)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        member = _decoder(args[0])
        return lambda value: tuple(member(v) for v in _expect(value, list))
    raise TypeError(f"the codec has no rule for {tp!r}")


def _dataclass_decoder(cls: type[Any]) -> Decoder:
    hints = get_type_hints(cls)
    fields = [
        (f.name, f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        for f in dataclasses.fields(cls)
    ]

    def decode(value: Any) -> Any:
        data = _expect(value, dict)
        kwargs: dict[str, Any] = {}
        for name, required in fields:
            if name in data:
                kwargs[name] = _decoder(hints[name])(data[name])
            elif required:
                raise CodecError(f"{cls.__name__} without {name!r}")
        return cls(**kwargs)

    return decode
