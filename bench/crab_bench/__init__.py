"""`crab bench`: load workloads against a crab server, with correctness checks.

The coordinator (this process) starts or finds the server, spreads clients
over load-generator processes (loadgen.py), drives the workload phases, checks
every delivery (check.py) and reports (report.py)."""
