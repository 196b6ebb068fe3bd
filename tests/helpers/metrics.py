"""Reading a crab process's Prometheus metrics the way Prometheus does: GET
/metrics over HTTP, parsed by prometheus_client's own parser."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.process import CrabProcess

METRICS_LINE = re.compile(r"metrics on (http://\S+/metrics)")

# (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_url(process: CrabProcess, timeout: float = 30.0) -> str:
    """The address the process logged for its metrics."""
    return process.wait_for_line(METRICS_LINE, timeout).group(1)


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=10.0) as client:
        answer = await client.get(url)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def labelled(samples: Samples, name: str) -> Mapping[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}
