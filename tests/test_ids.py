"""Object ids sort by creation: keyset pagination lists oldest first."""

from __future__ import annotations

import time

import pytest

from app.ids import new_id, prefix_of


def test_ids_made_in_one_process_increase_even_within_a_millisecond() -> None:
    made = [new_id("dep") for _ in range(10_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(prefix_of(i) == "dep" and len(i) == len("dep_") + 26 for i in made)
    assert all(i == i.lower() for i in made)  # one case: text order is creation order


def test_a_clock_set_back_does_not_make_an_older_looking_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = new_id("dep")
    monkeypatch.setattr(time, "time_ns", lambda: 0)  # the clock jumps back to 1970
    after = [new_id("dep") for _ in range(3)]
    assert [before, *after] == sorted([before, *after])
