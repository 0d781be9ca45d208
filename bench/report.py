"""What a run shows: a Markdown table (keys, then peers), the JSON, and a
PNG chart beside the JSON (matplotlib, Agg backend)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.results import Entry

#: the keys in the order the table shows them
KEYS = (
    "overhead_ratio", "vs_bare_loop", "cpu_us_per_record", "latency_hiding_ratio", "saturation",
    "throttled_per_record", "adaptive_saturation", "request_efficiency", "peak_rss_mb", "peers",
    "aggregation", "bench_seconds",
)
#: keys drawn against a shared 0..1.5 scale in the chart
RATIO_KEYS = ("overhead_ratio", "vs_bare_loop", "latency_hiding_ratio", "saturation", "adaptive_saturation",
              "request_efficiency")


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return _figure(value)
    return str(value)


def _figure(value: float) -> str:
    """Thousands whole, tens with one decimal, ratios with three, small shares with two digits."""
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 0.1 or value == 0:
        return f"{value:.3f}"
    return f"{value:.2g}"


def _goal(result: Entry) -> str:
    goal = result.get("goal")
    if not goal:
        return ""
    text = f"{'≥' if goal['op'] == '>=' else '≤'} {goal['target']:g}"
    for name, extra in (goal.get("also") or {}).items():
        text += f", {name} {'≥' if extra['op'] == '>=' else '≤'} {extra['target']:g}"
    return text


def key_table(results: Dict[str, Entry]) -> str:
    lines = ["| key | value | baseline | goal | met | what |", "|---|---|---|---|---|---|"]
    for key in KEYS:
        result = results.get(key)
        if result is None:
            continue
        raw = result.get("raw", {})
        if "skipped" in result:
            lines.append(f"| {key} | skipped | | {_goal(result)} | | {result['skipped']} |")
            continue
        met = "" if "met" not in result else ("yes" if result["met"] else "**no**")
        what = f"{raw.get('value_is', '')}; baseline: {raw.get('baseline_is', '')}"
        value, baseline = _number(result["value"]), _number(result["baseline"])
        lines.append(f"| {key} | {value} | {baseline} | {_goal(result)} | {met} | {what} |")
    return "\n".join(lines)


def peers_table(results: Dict[str, Entry]) -> str:
    writers = (results.get("peers") or {}).get("raw", {}).get("writers", {})
    if not writers:
        return ""
    lines = ["| writer | records | records/s | saturation | throttled per record | write phase s | note |",
             "|---|---|---|---|---|---|---|"]
    for name, w in writers.items():
        if "skipped" in w:
            lines.append(f"| {name} | – | – | – | – | – | skipped: {w['skipped']} |")
            continue
        note = "; ".join(_peer_notes(w))
        lines.append(f"| {name} | {w['records']:,} | {w['records_per_s']:,.0f} | {w['saturation']:.3f} | "
                     f"{w['throttled_per_record']:.3f} | {w['write_phase_s']:.1f} | {note} |")
    return "\n".join(lines)


def _peer_notes(writer: Dict[str, Any]) -> List[str]:
    own = writer.get("writer", {})
    notes = [writer["note"]] if writer.get("note") else []
    if own.get("cpu_s"):
        notes.append(f"{own['cpu_s'] / max(1, writer['records']) * 1000:.2f} ms CPU per record")
    if own.get("failed"):
        notes.append(f"{own['failed']} records failed")
    if writer.get("accepted", 0) < writer.get("records", 0):
        notes.append(f"{writer['records'] - writer['accepted']} not accepted")
    return notes


def overhead_line(results: Dict[str, Entry]) -> str:
    """The writers' overhead ratios on the fast loopback endpoint, if the Java peer's was measured."""
    ratios = (results.get("peers") or {}).get("raw", {}).get("overhead_ratios") or {}
    shown = [f"{name} {_number(value)}" for name, value in ratios.items() if name != "is"]
    if not shown:
        return ""
    return ("Overhead ratio on the fast loopback endpoint (records/s ending in the writer ÷ ending in a "
            "no-op, each on its own DirectRunner, this run): " + ", ".join(shown))


#: the keys whose raw figures hold a ratio per round (bench.beam_runs.by_round)
ROUND_KEYS = ("vs_bare_loop", "overhead_ratio", "latency_hiding_ratio")


def rounds_line(results: Dict[str, Entry]) -> str:
    """The pipeline ratios round by round, beside the fastest-against-fastest
    the table shows: the spread a noisy machine puts on them."""
    shown = []
    for key in ROUND_KEYS:
        raw = (results.get(key) or {}).get("raw", {})
        if "by_round" in raw and len(raw["by_round"]) > 1:
            ratios = ", ".join(_number(r) for r in raw["by_round"])
            shown.append(f"{key} {ratios} (median {_number(raw['median_of_rounds'])})")
    if not shown:
        return ""
    return ("Round by round (each variant's run ÷ its baseline's in the same round; the table takes "
            "the fastest of each): " + "; ".join(shown))


def markdown(results: Dict[str, Entry], title: str) -> str:
    parts = [f"### {title}", "", key_table(results)]
    rounds = rounds_line(results)
    if rounds:
        parts += ["", rounds]
    peers = peers_table(results)
    if peers:
        parts += ["", "Peers, against the same throttling front (4 shards × 1,000 records/s):", "", peers]
    overhead = overhead_line(results)
    if overhead:
        parts += ["", overhead]
    return "\n".join(parts)


def write_json(results: Dict[str, Entry], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _bar_color(result: Entry) -> str:
    return "tab:gray" if "met" not in result else "tab:green" if result["met"] else "tab:red"


def write_chart(results: Dict[str, Entry], path: Path, title: str) -> None:
    """Left: the ratio keys against their goals; right: the peers' saturation
    and throttled attempts per record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.5))
    shown: List[str] = [k for k in RATIO_KEYS if results.get(k, {}).get("value") is not None]
    values = [results[k]["value"] for k in shown]
    left.barh(shown, values, color=[_bar_color(results[k]) for k in shown])
    for i, key in enumerate(shown):
        goal: Optional[Dict[str, Any]] = results[key].get("goal")
        if goal:
            left.plot([goal["target"]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
        left.text(values[i], i, f" {values[i]:.3g}", va="center")
    left.invert_yaxis()
    left.set_xlim(0, max([1.5, *values]) * 1.15)
    left.set_title("ratios (black: goal; green met, red not)")
    _draw_peers(right, results)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _draw_peers(axis: Any, results: Dict[str, Entry]) -> None:
    writers = (results.get("peers") or {}).get("raw", {}).get("writers", {})
    names = [n for n, w in writers.items() if "saturation" in w]
    if not names:
        axis.text(0.5, 0.5, "no peer ran", ha="center", va="center")
        axis.set_axis_off()
        return
    positions = range(len(names))
    axis.bar([p - 0.2 for p in positions], [writers[n]["saturation"] for n in names], 0.4,
             label="saturation", color="tab:blue")
    axis.bar([p + 0.2 for p in positions], [writers[n]["throttled_per_record"] for n in names], 0.4,
             label="throttled attempts per record", color="tab:orange")
    axis.set_xticks(list(positions))
    axis.set_xticklabels([n.split(" (")[0] for n in names], rotation=15, ha="right")
    axis.axhline(1.0, color="gray", linewidth=0.8, linestyle="--")
    axis.set_title("behind the throttling front, 4 shards × 1,000/s")
    skipped = [n for n, w in writers.items() if "skipped" in w]
    if skipped:
        axis.set_xlabel("skipped: " + ", ".join(skipped))
    axis.legend()
