"""Reading ``/metrics`` as a scraper does: over HTTP, parsed by prometheus-client's own parser."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# What the app's ids look like (app/ids.py: "<kind>_<26 characters of a lower-case ULID>").
ID_LIKE = re.compile(r"[a-z]+_[0-9a-z]{26}")


class Scrape:
    """One scrape: the samples of every family, by sample name."""

    def __init__(self, text: str) -> None:
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples: list[Sample] = [s for f in self.families.values() for s in f.samples]

    def promenade(self) -> list[Sample]:
        return [sample for sample in self.samples if sample.name.startswith("promenade_")]

    def label_names(self, family: str) -> set[str]:
        return {name for sample in self.families[family].samples for name in sample.labels}

    def value(self, name: str, **labels: str) -> float:
        """The sample of that name with exactly those labels (``le`` aside); 0 when absent,
        as Prometheus reads a series not reported yet."""
        for sample in self.samples:
            own = {k: v for k, v in sample.labels.items() if k != "le"}
            if sample.name == name and own == labels and "le" not in sample.labels:
                return sample.value
        return 0.0

    def values(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for sample in self.samples
            if sample.name == name
        }


async def scrape(base_url: str) -> Scrape:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        response = await http.get(f"{base_url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return Scrape(response.text)


def assert_bounded(samples: Iterable[Sample], allowed: Mapping[str, Iterable[str] | None]) -> None:
    """Every label of Promenade's samples is one of ``allowed``'s names, with a value from its
    set (None: any value, such as a data plane's label), and no value looks like an id."""
    for sample in samples:
        for name, value in sample.labels.items():
            if name == "le":
                continue
            assert not ID_LIKE.search(value), (sample.name, name, value)
            assert name in allowed, (sample.name, name)
            values = allowed[name]
            if values is not None:
                assert value in set(values), (sample.name, name, value)
