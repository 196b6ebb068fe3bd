"""A crab client on grpcio (Google's gRPC), run as its own process by
tests/integration/test_process.py:
`python tests/helpers/grpcio_client.py GENERATED_DIR HOST:PORT`.

Its own process because grpcio-health-checking's health_pb2 and grpclib's
define the same protobuf symbols under different file names, and the
default descriptor pool refuses a second definition; here nothing of
grpclib's server side (nor crab) is imported. It talks to the server, then
prints what it saw as one JSON object for the test to check."""

from __future__ import annotations

import json
import queue
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Only the message classes: plain protoc output with no grpclib code behind it.
from grpclib.reflection.v1 import reflection_pb2

TIMEOUT = 20.0
REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def main(generated: str, target: str) -> dict[str, Any]:
    sys.path.insert(0, generated)
    import crab_pb2  # type: ignore[import-not-found]
    import crab_pb2_grpc  # type: ignore[import-not-found]

    seen: dict[str, Any] = {}
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)

        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        seen["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

        reflect = channel.stream_stream(
            REFLECTION,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        asks = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="crab.v1.Session"),
        ]
        listed, found = list(reflect(iter(asks), timeout=TIMEOUT))
        seen["services"] = sorted(s.name for s in listed.list_services_response.service)
        from google.protobuf import descriptor_pb2

        files = [
            descriptor_pb2.FileDescriptorProto.FromString(raw)
            for raw in found.file_descriptor_response.file_descriptor_proto
        ]
        seen["reflected_files"] = sorted(f.name for f in files)
        seen["reflected_session_methods"] = [
            m.name for f in files for s in f.service if s.name == "Session" for m in s.method
        ]

        accounts = crab_pb2_grpc.AccountsStub(channel)
        tokens = accounts.SignUp(
            crab_pb2.SignUpRequest(
                username=f"grpcio{uuid.uuid4().hex[:8]}", password="pw-grpcio-1"
            ),
            timeout=TIMEOUT,
        )
        seen["signed_up"] = tokens.user.username
        auth = (("authorization", f"Bearer {tokens.access_token}"),)
        me = accounts.WhoAmI(crab_pb2.Empty(), metadata=auth, timeout=TIMEOUT)
        seen["whoami"] = me.username

        chats = crab_pb2_grpc.ChatsStub(channel)
        room = chats.CreateRoom(
            crab_pb2.CreateRoomRequest(name="interop"), metadata=auth, timeout=TIMEOUT
        )
        seen["room"] = {"id": room.id, "name": room.name, "kind": crab_pb2.ChatKind.Name(room.kind)}

        outbox: queue.Queue[Any] = queue.Queue()

        def frames() -> Iterator[Any]:
            while (frame := outbox.get()) is not None:
                yield frame

        session = crab_pb2_grpc.SessionStub(channel)
        replies = session.Connect(frames(), metadata=auth, timeout=TIMEOUT)

        def unbatched() -> Iterator[Any]:
            # Frames that queue up arrive as one FrameBatch: unpack in order.
            for frame in replies:
                if frame.HasField("batch"):
                    yield from frame.batch.frames
                else:
                    yield frame

        flat = unbatched()
        outbox.put(crab_pb2.ClientFrame(resume=crab_pb2.Resume()))
        first = next(flat)
        seen["first_frame"] = first.WhichOneof("kind")
        seen["ready_user"] = first.ready.user.username

        cid = uuid.uuid4().hex
        send = crab_pb2.SendMessage(
            chat_id=room.id, client_message_id=cid, text="hello from grpcio"
        )
        outbox.put(crab_pb2.ClientFrame(send=send))
        kinds = []
        for frame in flat:
            kinds.append(frame.WhichOneof("kind"))
            if frame.HasField("ack"):
                seen["ack"] = {
                    "client_message_id": frame.ack.client_message_id,
                    "sent_client_message_id": cid,
                    "message_id": frame.ack.message.id,
                    "text": frame.ack.message.text,
                    "sender": frame.ack.message.sender.username,
                }
                break
        outbox.put(None)  # done sending: the server answers what is left, then ends
        kinds += [frame.WhichOneof("kind") for frame in flat]
        seen["frames_until_ack_and_after"] = kinds
        seen["session_status"] = replies.code().name

        page = chats.GetMessages(
            crab_pb2.GetMessagesRequest(chat_id=room.id), metadata=auth, timeout=TIMEOUT
        )
        seen["stored"] = [(m.id, m.client_message_id, m.text) for m in page.messages]
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
