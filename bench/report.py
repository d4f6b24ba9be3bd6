"""Every benchmark in one run: a JSON report and the README's table of goals.

Each benchmark runs as its own process with ``--json`` (bench/read_path.py, bench/dashboard.py,
bench/promotions.py twice, bench/subscribers.py with and without permessage-deflate; with
``--scale`` also the dashboard, the promotions and the subscribers at 10x the load), and each
figure is a ratio against the reference its benchmark measured in the same run. The report is
written to ``--output`` (bench/report.json) and the table between the README's
``bench-report`` markers is replaced with this run's numbers.

    python -m bench.report [--scale] [--output bench/report.json] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- bench-report:start -->"
END = "<!-- bench-report:end -->"

Report = dict[str, Any]


def run_json(module: str, *args: str) -> Report:
    """``python -m <module> --json <args>``: its JSON (the last JSON object it printed)."""
    print(f"running {module} {' '.join(args)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", module, "--json", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    output = done.stdout
    result: Report = json.loads(output[output.index("{") :])
    result["wall_s"] = round(time.monotonic() - started, 1)
    result.pop("raw", None)
    return result


@dataclass(frozen=True)
class Goal:
    """A row of the table: what is measured, how to read it off the report, the goal."""

    path: str
    reading: Callable[[Report], float | None]
    show: Callable[[Report], str]
    goal: str
    met: Callable[[float], bool]


def _cpu_per_promotion(run: Report) -> float | None:
    values = run["cpu_ms_per_promotion"].values()
    return None if None in values else float(sum(values))


GOALS = [
    Goal(
        "`{ __typename }` with a token, req/s, against plain Strawberry",
        lambda r: r["read_path"]["ratio"],
        lambda r: (
            f"{r['read_path']['promenade_rps']:,.0f} against "
            f"{r['read_path']['reference_rps']:,.0f}: **{r['read_path']['ratio']:.2f}**"
        ),
        "≥ 0.5",
        lambda value: value >= 0.5,
    ),
    Goal(
        "organization dashboard (10 environments, 200 integrations, 50 deployed in each "
        "environment), req/s, against a hand-written Starlette + SQLAlchemy endpoint",
        lambda r: r["dashboard"]["ratio"],
        lambda r: (
            f"{r['dashboard']['promenade_rps']:.1f} ({r['dashboard']['promenade_ms']:.0f} ms) "
            f"against {r['dashboard']['reference_rps']:.1f} "
            f"({r['dashboard']['reference_ms']:.0f} ms): **{r['dashboard']['ratio']:.3f}**"
        ),
        "≥ 0.6",
        lambda value: value >= 0.6,
    ),
    Goal(
        "promotions/s (2 workers, 8 clients) against raw confirmed publishes/s",
        lambda r: r["promotions_8"]["ratio"],
        lambda r: (
            f"{r['promotions_8']['promotions_per_s']:.1f} against "
            f"{r['promotions_8']['baseline_publishes_per_s']:,.0f}: "
            f"**{r['promotions_8']['ratio']:.3f}**"
        ),
        "≥ 0.10",
        lambda value: value >= 0.10,
    ),
    Goal(
        "CPU per promotion, all processes together (1 client)",
        lambda r: _cpu_per_promotion(r["promotions_1"]),
        lambda r: (
            f"**{_cpu_per_promotion(r['promotions_1']) or 0:.0f} ms** ("
            + ", ".join(
                f"{name} {ms:.0f}"
                for name, ms in r["promotions_1"]["cpu_ms_per_promotion"].items()
                if ms is not None
            )
            + ")"
        ),
        "≤ 12 ms",
        lambda value: value <= 12,
    ),
    Goal(
        "promote → SUCCEEDED median (1 client) against a raw publish → consume → publish → "
        "consume round trip",
        lambda r: r["promotions_1"]["latency_to_round_trip"],
        lambda r: (
            f"{r['promotions_1']['latency_median_ms']:.0f} ms against "
            f"{r['promotions_1']['round_trip_median_ms']:.1f} ms: "
            f"**{r['promotions_1']['latency_to_round_trip']:.1f}x**"
        ),
        "≤ 10x",
        lambda value: value <= 10,
    ),
    Goal(
        "1,000 subscribers (2 client processes, permessage-deflate): the last gets an event, "
        "median, against a bare broadcaster",
        lambda r: r["subscribers"]["ratio_last_to_bare_broadcaster"]["median"],
        lambda r: _against_bare(r["subscribers"], "median"),
        "≤ 2x",
        lambda value: value <= 2,
    ),
    Goal(
        "the same, p99",
        lambda r: r["subscribers"]["ratio_last_to_bare_broadcaster"]["p99"],
        lambda r: _against_bare(r["subscribers"], "p99"),
        "≤ 2x",
        lambda value: value <= 2,
    ),
    Goal(
        "server CPU the crowd adds, per event and subscriber",
        lambda r: r["subscribers"]["crowd_cpu_per_event_and_subscriber_us"],
        lambda r: (
            f"**{r['subscribers']['crowd_cpu_per_event_and_subscriber_us']:.0f} µs** (the bare "
            f"broadcaster: "
            f"{r['subscribers']['bare_broadcaster']['cpu_per_event_and_subscriber_us']:.0f} µs)"
        ),
        "≤ 50 µs",
        lambda value: value <= 50,
    ),
    Goal(
        "memory per subscriber without compression (with it: stated)",
        lambda r: r["subscribers_plain"]["memory_per_subscriber_kib"],
        lambda r: (
            f"**{r['subscribers_plain']['memory_per_subscriber_kib']:.0f} KiB** "
            f"({r['subscribers']['memory_per_subscriber_kib']:.0f} KiB with permessage-deflate)"
        ),
        "≤ 50 KiB",
        lambda value: value <= 50,
    ),
]


def _against_bare(run: Report, stat: str) -> str:
    ours = run["last_of_all_s"][stat] * 1000
    bare = run["bare_broadcaster"]["last_of_all_s"][stat] * 1000
    ratio = run["ratio_last_to_bare_broadcaster"][stat]
    return f"{ours:.0f} ms against {bare:.0f} ms: **{ratio:.1f}x**"


def scale_rows(report: Report) -> list[str]:
    """How cost grows at 10x the load (with --scale)."""
    rows = []
    if "dashboard_10x" in report:
        small, large = report["dashboard"], report["dashboard_10x"]
        rows.append(
            f"| dashboard, {small['shape']['integrations']} → "
            f"{large['shape']['integrations']} integrations (a page of 50 projects of 50) | "
            f"{small['promenade_ms']:.0f} → {large['promenade_ms']:.0f} ms a request (the "
            f"hand-written endpoint: {small['reference_ms']:.0f} → "
            f"{large['reference_ms']:.0f} ms) |"
        )
    if "promotions_10x" in report:
        small, large = report["promotions_8"], report["promotions_10x"]
        rows.append(
            f"| promotions, {small['parameters']['integrations']} → "
            f"{large['parameters']['integrations']} integrations (8 clients) | "
            f"{small['promotions_per_s']:.1f} → {large['promotions_per_s']:.1f} promotions/s, "
            f"median {small['latency_median_ms']:.0f} → {large['latency_median_ms']:.0f} ms |"
        )
    if "subscribers_10x" in report:
        small, large = report["subscribers"], report["subscribers_10x"]
        rows.append(
            f"| subscribers, {small['subscribers']:,} → {large['subscribers']:,} (one API "
            f"process) | last median {small['last_of_all_s']['median'] * 1000:.0f} → "
            f"{large['last_of_all_s']['median'] * 1000:.0f} ms (against the bare broadcaster "
            f"{small['ratio_last_to_bare_broadcaster']['median']:.1f}x → "
            f"{large['ratio_last_to_bare_broadcaster']['median']:.1f}x), "
            f"{small['memory_per_subscriber_kib']:.0f} → "
            f"{large['memory_per_subscriber_kib']:.0f} KiB each |"
        )
    return rows


def table(report: Report) -> str:
    lines = [
        f"{START}",
        f"One run of `make bench-all`, {report['date']} ({report['machine']}):",
        "",
        "| path | this run | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    for goal in GOALS:
        value = goal.reading(report)
        met = "yes" if value is not None and goal.met(value) else "no"
        lines.append(f"| {goal.path} | {goal.show(report)} | {goal.goal} | {met} |")
    scaled = scale_rows(report)
    if scaled:
        lines += ["", "At 10x the load:", "", "| load | cost |", "| --- | --- |", *scaled]
    lines.append(END)
    return "\n".join(lines)


def write_readme(readme: Path, report: Report) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} section to replace")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(before + table(report) + after)


def measure(scale: bool) -> Report:
    report: Report = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        "read_path": run_json("bench.read_path"),
        "dashboard": run_json("bench.dashboard"),
        "promotions_1": run_json("bench.promotions"),
        "promotions_8": run_json("bench.promotions", "--clients", "8"),
        "subscribers": run_json("bench.subscribers"),
        "subscribers_plain": run_json("bench.subscribers", "--no-compression"),
    }
    if scale:
        report["dashboard_10x"] = run_json(
            "bench.dashboard", "--integrations", "2000", "--requests", "5", "--rounds", "3"
        )
        report["promotions_10x"] = run_json(
            "bench.promotions", "--clients", "8", "--integrations", "500"
        )
        report["subscribers_10x"] = run_json(
            "bench.subscribers", "--subscribers", "5000", "--clients", "4", "--events", "10"
        )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--scale", action="store_true", help="also at 10x the load")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "report.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument(
        "--from-report", action="store_true", help="only rewrite the table from --output"
    )
    args = parser.parse_args(argv)
    if args.from_report:
        report = json.loads(args.output.read_text())
    else:
        report = measure(args.scale)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    write_readme(args.readme, report)
    print(table(report))


if __name__ == "__main__":
    main()
