"""crab's wire messages as C (upb) protobuf classes, built at run time from
the descriptor set `make proto` writes beside crab.proto. The same wire
format as the betterproto2 classes, ~10x cheaper to encode and decode:
used where messages are many (history pages, the bench's load generators)
and by the reflection service."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTORS = Path(__file__).resolve().parent / "crab.desc"


@cache
def pool() -> Any:
    found = descriptor_pool.DescriptorPool()
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    for file in files.file:
        found.Add(file)
    return found


def message_class(name: str) -> Any:
    """The class of `crab.v1.<name>`."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(f"crab.v1.{name}"))
