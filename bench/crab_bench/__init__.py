"""`crab bench` (or `crab-bench`): load workloads against a crab server, with
correctness checks.

The coordinator (this process) starts or finds the server, spreads clients
over load-generator processes (loadgen.py, spoken to through protocol.py),
drives the workload phases, checks every delivery (check.py) and reports
(report.py).

Its own distribution (bench/pyproject.toml): it uses crab only through what
any tool may: the wire (crab.proto, spoken by rpc.py, h2raw.py and
attacks/), `crab serve` (server.py), the client (crab.tui.app.ChatApp and
crab.tui.demo, workloads/chat.py) and the seeding API (crab.core.seeding,
workloads/history.py)."""
