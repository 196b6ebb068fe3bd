"""`crab bench ...`: the click group (imported only when `crab bench` runs)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from crab_bench.report import Report, plot, render, write_json
from crab_bench.runner import Bench, Options, open_bench
from crab_bench.server import BenchError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAILED = 1  # the run found lost, duplicated or reordered messages
EXIT_ERROR = 3  # the run could not be carried out
ABUSE_ATTACKS = (
    "unknown-fields,huge-request,idle-connections,signin-hammer,garbage,resume-flood,"
    "big-resume,rapid-reset,ping-flood,signup-flood,room-flood"
)


def common_options(default_hashing: str = "cheap") -> Callable[[F], F]:
    def decorate(func: F) -> F:
        options = [
            click.option(
                "--target",
                metavar="HOST:PORT",
                help="Measure this running server instead of starting one.",
            ),
            click.option(
                "--server-pid",
                type=int,
                help="With --target: the server's pid, for its RSS and CPU.",
            ),
            click.option(
                "--procs",
                default=2,
                show_default=True,
                type=click.IntRange(1, 64),
                help="Load-generator processes.",
            ),
            click.option(
                "--per-channel",
                default=1,
                show_default=True,
                type=click.IntRange(1, 80),
                help="Session streams per HTTP/2 connection (1: each client its own, like real clients).",
            ),
            click.option(
                "--drain-timeout",
                default=10.0,
                show_default=True,
                type=float,
                help="Seconds to wait for missing deliveries after the last acknowledgement.",
            ),
            click.option(
                "--password-hashing",
                type=click.Choice(["default", "cheap"]),
                default=default_hashing,
                show_default=True,
                help="The own server's argon2 cost (cheap only speeds up setting up accounts).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the results as JSON."),
            click.option(
                "--plot",
                type=click.Path(dir_okay=False, path_type=Path),
                help="Write a PNG: latency histogram and throughput over time.",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def execute(
    kwargs: dict[str, Any],
    body: Callable[[Bench, Any], Report],
    fds: int = 4096,
    extra_workers: int = 0,
    prepare: Callable[[Path], Any] | None = None,
) -> None:
    """Runs a workload: server up, load generators up, body, report, exit code."""
    as_json: bool = kwargs.pop("as_json")
    plot_path: Path | None = kwargs.pop("plot")
    options = Options(
        target=kwargs.pop("target"),
        server_pid=kwargs.pop("server_pid"),
        procs=kwargs.pop("procs"),
        per_channel=kwargs.pop("per_channel"),
        drain_timeout=kwargs.pop("drain_timeout"),
        password_hashing=kwargs.pop("password_hashing"),
        server_open_files=kwargs.pop("server_open_files", None),
    )
    err = Console(stderr=True)
    # SIGTERM unwinds like Ctrl-C: the own server and the load generators stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        with open_bench(options, err, fds, extra_workers, prepare) as (bench, prepared):
            report = body(bench, prepared)
            if not report.ok:
                kept = bench.keep_server_log()
                if kept is not None:
                    report.notes.append(f"the server's log is kept in {kept}")
    except BenchError as error:
        err.print(f"[red]bench error[/]: {error}", highlight=False)
        sys.exit(EXIT_ERROR)
    report.params.update(
        {"procs": options.procs, "per_channel": options.per_channel, "target": options.target}
    )
    if plot_path is not None:
        plot(report, plot_path)
        report.notes.append(f"plot written to {plot_path}")
    emit(report, as_json, err)


def emit(report: Report, as_json: bool, err: Console) -> None:
    """Prints the report (a table, or JSON on stdout with failures on
    stderr) and exits with EXIT_FAILED if the run found a fault."""
    if as_json:
        click.echo(write_json(report))
        for line in report.failures():
            err.print(f"FAIL: {line}", markup=False, highlight=False)
    else:
        render(report, Console())
    if not report.ok:
        sys.exit(EXIT_FAILED)


@click.group()
def bench() -> None:
    """Measure a crab server under load, checking every delivery (and, with
    `chat`, how quick the terminal client is).

    By default each workload starts its own `crab serve` (memory broker,
    SQLite in a temporary directory); --target measures a running server.
    A run that loses, duplicates or reorders a message exits with status 1."""


@bench.command("fanout")
@click.option("--members", default=100, show_default=True, type=click.IntRange(1))
@click.option("--senders", default=10, show_default=True, type=click.IntRange(1))
@click.option(
    "--messages", default=100, show_default=True, type=click.IntRange(1), help="Per sender."
)
@click.option(
    "--typing",
    is_flag=True,
    help="Senders send a Typing frame before each message (issue 12's ephemeral traffic).",
)
@common_options()
def fanout_command(members: int, senders: int, messages: int, typing: bool, **kwargs: Any) -> None:
    """M listening members, S senders sending N messages each (ack before next)."""
    from crab_bench.workloads import fanout

    execute(kwargs, lambda bench, _: fanout.run(bench, members, senders, messages, typing))


@bench.command("idle")
@click.option(
    "--idle", default=10_000, show_default=True, type=click.IntRange(0), help="Idle clients."
)
@click.option("--members", default=20, show_default=True, type=click.IntRange(1))
@click.option("--senders", default=5, show_default=True, type=click.IntRange(1))
@click.option(
    "--messages", default=100, show_default=True, type=click.IntRange(1), help="Per sender."
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="First run the active room without the idle clients, to compare.",
)
@common_options()
def idle_command(
    idle: int, members: int, senders: int, messages: int, baseline: bool, **kwargs: Any
) -> None:
    """K connected idle clients (each with an open session stream) while a room fans out."""
    from crab_bench.workloads import idle as workload

    procs = max(1, kwargs["procs"])
    # The server holds a socket per client (the load generators close their
    # sign-up channels before the session streams open); each process its share.
    fds = idle + members + 2048
    execute(
        kwargs,
        lambda bench, _: workload.run(bench, idle, members, senders, messages, baseline),
        fds=max(fds, idle // procs + 1024),
    )


@bench.command("history")
@click.option(
    "--messages",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(50),
    help="Stored in the chat before the own server starts.",
)
@click.option("--requests", default=2000, show_default=True, type=click.IntRange(1))
@click.option(
    "--concurrency", default=1, show_default=True, type=click.IntRange(1), help="Calls in flight."
)
@click.option("--page", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option(
    "--warmup", default=50, show_default=True, type=click.IntRange(0), help="Unmeasured calls."
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--chat-id", type=int, help="With --target: a chat that holds the messages.")
@click.option("--username", help="With --target: a member of that chat.")
@click.option("--password", help="With --target: that member's password.")
@common_options()
def history_command(
    messages: int,
    requests: int,
    concurrency: int,
    page: int,
    warmup: int,
    seed: int,
    chat_id: int | None,
    username: str | None,
    password: str | None,
    **kwargs: Any,
) -> None:
    """GetMessages pages at random positions in a chat of 1,000,000 messages."""
    from crab_bench.workloads import history

    execute(
        kwargs,
        lambda bench, prepared: history.run(
            bench,
            prepared,
            messages,
            requests,
            concurrency,
            page,
            warmup,
            seed,
            (chat_id, username, password),
        ),
        prepare=history.prefill(messages),
    )


@bench.command("search")
@click.option(
    "--messages",
    default=1_000_000,
    show_default=True,
    type=click.IntRange(100),
    help="Stored in the rooms before the own server starts.",
)
@click.option("--chats", default=4, show_default=True, type=click.IntRange(2, 100))
@click.option("--requests", default=2000, show_default=True, type=click.IntRange(1))
@click.option(
    "--concurrency", default=1, show_default=True, type=click.IntRange(1), help="Calls in flight."
)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 50))
@click.option(
    "--warmup", default=50, show_default=True, type=click.IntRange(0), help="Unmeasured calls."
)
@click.option("--seed", default=1, show_default=True, type=int)
@common_options()
def search_command(
    messages: int,
    chats: int,
    requests: int,
    concurrency: int,
    limit: int,
    warmup: int,
    seed: int,
    **kwargs: Any,
) -> None:
    """SearchMessages over 1,000,000 stored messages in a few rooms (own server only)."""
    from crab_bench.workloads import search

    execute(
        kwargs,
        lambda bench, prepared: search.run(
            bench, prepared, messages, chats, requests, concurrency, limit, warmup, seed
        ),
        prepare=search.prefill(messages, chats),
    )


@bench.command("signin")
@click.option(
    "--signins", default=10, show_default=True, type=click.IntRange(1), help="Concurrent loops."
)
@click.option("--members", default=20, show_default=True, type=click.IntRange(1))
@click.option("--senders", default=5, show_default=True, type=click.IntRange(1))
@click.option(
    "--messages", default=200, show_default=True, type=click.IntRange(1), help="Per sender."
)
@click.option(
    "--baseline/--no-baseline",
    default=True,
    show_default=True,
    help="First run the room without sign-ins, to compare.",
)
@common_options(default_hashing="default")
def signin_command(
    signins: int, members: int, senders: int, messages: int, baseline: bool, **kwargs: Any
) -> None:
    """Concurrent sign-ins (repeated, real argon2 cost) while a room fans out."""
    from crab_bench.workloads import signin

    hashing = None if kwargs["target"] else kwargs["password_hashing"]
    execute(
        kwargs,
        lambda bench, _: signin.run(bench, signins, members, senders, messages, baseline, hashing),
        extra_workers=1,
    )


def _attack_names(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    from crab_bench.attacks import ATTACKS

    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown attack(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ATTACKS)}"
        )
    return names


@bench.command("abuse")
@click.option(
    "--attacks",
    default="all",
    show_default=True,
    callback=lambda ctx, param, value: _attack_names(
        ctx, param, ABUSE_ATTACKS if value == "all" else value
    ),
    help="Comma-separated, run in the order given; all: " + ABUSE_ATTACKS + ".",
)
@click.option(
    "--seconds",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5),
    help="Length of each phase (the baseline and each attack).",
)
@click.option(
    "--history",
    default=3000,
    show_default=True,
    type=click.IntRange(1),
    help="Messages in the attacker's chat, which resume-flood asks for again and again.",
)
@click.option(
    "--server-open-files",
    default=1024,
    show_default=True,
    type=click.IntRange(64),
    help="The own server's soft open-file limit at start (a common default).",
)
@common_options(default_hashing="default")
def abuse_command(attacks: list[str], seconds: float, history: int, **kwargs: Any) -> None:
    """One attack at a time while a bystander chats and a real user signs in."""
    from crab_bench.workloads import abuse

    execute(
        kwargs,
        lambda bench, _: abuse.run(bench, attacks, seconds, history),
        fds=8192,  # idle-connections holds 2,100 sockets in this process
        extra_workers=1,
    )


@bench.command("chat")
@click.option(
    "--runs", default=10, show_default=True, type=click.IntRange(1), help="Starts of each kind."
)
@click.option(
    "--messages",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="Loaded in the open chat for the keys.",
)
@click.option(
    "--typed", default=200, show_default=True, type=click.IntRange(0), help="Characters typed."
)
@click.option(
    "--pages",
    default=1_000,
    show_default=True,
    type=click.IntRange(0),
    help="PageUp presses (10 messages each), then as many PageDown.",
)
@click.option(
    "--server/--no-server",
    default=True,
    show_default=True,
    help="Also time a saved-session start, against the bench's own crab serve.",
)
@click.option(
    "--size",
    default="100x30",
    show_default=True,
    callback=lambda ctx, param, value: _terminal_size(ctx, param, value),
    help="The terminal's COLUMNSxROWS.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def chat_command(
    runs: int,
    messages: int,
    typed: int,
    pages: int,
    server: bool,
    size: tuple[int, int],
    as_json: bool,
) -> None:
    """The terminal client: first paint of `crab chat`, and key presses on a long chat."""
    from crab_bench.workloads import chat

    chat.main(runs, messages, typed, pages, server, as_json, size)


@bench.command("call")
@click.option("--calls", default=20, show_default=True, type=click.IntRange(1), help="Calls timed.")
@click.option(
    "--seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(1),
    help="How long one call is held for the clients' CPU.",
)
@click.option(
    "--frames", default=300, show_default=True, type=click.IntRange(16), help="For draw_cost."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def call_command(calls: int, seconds: float, frames: int, as_json: bool) -> None:
    """A 1:1 video call between two headless clients (issue 14): setup times,
    CPU, draw time and keys while the video plays."""
    from crab_bench.workloads import call

    call.main(calls, seconds, frames, as_json)


def _terminal_size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    columns, x, rows = value.lower().partition("x")
    if not (x and columns.isdigit() and rows.isdigit()):
        raise click.BadParameter("COLUMNSxROWS, e.g. 200x60", ctx, param)
    if not (20 <= int(columns) <= 1000 and 5 <= int(rows) <= 500):
        raise click.BadParameter("20-1000 columns and 5-500 rows", ctx, param)
    return int(columns), int(rows)
