"""Every metric crab keeps has a panel in the Grafana dashboard and a row
in README's table; the dashboard asks for its Prometheus data source."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from crab.core import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "crab.json"


def _names() -> set[str]:
    """crab's metric names: the objects in crab/core/metrics.py and the
    gauges read when scraped (metrics_gauges.py)."""
    kept = {m._name for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)}
    kept |= {m.name for m in vars(metrics).values() if isinstance(m, metrics.LoopCounter)}
    gauges = (ROOT / "crab" / "core" / "metrics_gauges.py").read_text()
    read = set(re.findall(r'"(crab_[a-z_]+)"', gauges))
    assert len(kept) >= 10 and len(read) >= 4
    return kept | read


def _exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_metric_has_a_dashboard_panel() -> None:
    exprs = "\n".join(_exprs())
    missing = {n for n in _names() if not re.search(rf"\b{n}(_total|_bucket)?\b", exprs)}
    assert not missing, f"no panel shows {sorted(missing)}"


def test_the_dashboard_asks_for_its_data_source_and_uses_it_everywhere() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_readme_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    missing = {n for n in _names() if not re.search(rf"`{n}(_total)?[`{{]", section)}
    assert not missing, f"README's Metrics section lacks {sorted(missing)}"
