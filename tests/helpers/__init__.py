"""What tests import: one place, never another test module or a conftest.

    server.py         the in-process server's settings, PASSWORD, fixture types
    chats.py          rooms, members, new users, a bystander, whole histories
    process.py        `crab serve` / `crab worker` as a real process
    cluster.py        the scaled shape: replicas and workers as processes
    services.py       a private RabbitMQ and PostgreSQL, started by the tests
    proxy.py          a TCP proxy that cuts and restores a link
    tui.py            client states for reducer and view tests
    clock.py          a hand-moved clock and `settle`: no sleeping for time to pass
    grpcio_client.py  a grpcio client, run as its own process

A folder's own harness stays beside its tests (contract/link.py,
contract/held_worker.py, integration/hostile/raw.py).
"""
