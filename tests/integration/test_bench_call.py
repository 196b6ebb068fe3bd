"""`crab bench call`: a short run against its own `crab serve`, alice in the
bench and bob in a process of his own, reports every figure it promises."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.process import crab_env
from tests.integration.test_bench import bench_command

pytest.importorskip("aiortc")


@pytest.mark.slow  # crab bench, its server and bob's client as processes; real media
def test_call_bench_times_calls_and_measures_a_held_one() -> None:
    done = subprocess.run(
        bench_command("call", "--calls", "2", "--seconds", "2", "--frames", "30", "--json"),
        capture_output=True,
        text=True,
        env=crab_env(),
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    results = report["results"]
    assert report["ok"] and report["problems"] == [], report
    connected, first = results["connected_ms"], results["first_frame_ms"]
    assert connected["count"] == first["count"] == 2
    # A picture comes after the link it travels on.
    assert 0 < connected["p50"] <= first["p50"] and connected["max"] <= first["max"]
    assert results["server_cpu_ms_per_call"] > 0
    assert set(results["client_cpu_percent"]) == {"alice", "bob"}
    assert all(cpu > 0 for cpu in results["client_cpu_percent"].values())
    # The pattern arrives at 15 frames a second: alice draws it (held 2 s).
    assert results["draws_per_second"] > 5 and results["draw_in_app_ms"]["count"] > 10
    assert results["draw_cost_ms"]["count"] == 15  # 30 frames, the first 15 warm up
    assert results["keys_ms"]["count"] == 176 and results["keys_ms"]["p50"] > 0
