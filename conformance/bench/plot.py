"""Plot of decode rate against concurrency, one line per result file.

Rendered with matplotlib's Agg backend (selected before pyplot is imported) so it works on
headless CI machines and never tries to open a window.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen before this import

__all__ = ["plot_decode_rates"]

_PANELS = (
    ("decode_tps", "per-request decode rate\n(server counters, tokens/s)"),
    ("aggregate_tps", "aggregate decode rate\n(all concurrent requests, tokens/s)"),
)


def _series(
    result: dict[str, Any], phase: str, metric: str
) -> tuple[list[int], list[float], list[list[float]]]:
    xs, ys, err_lo, err_hi = [], [], [], []
    runs = sorted(
        (r for r in result["runs"] if r["phase"] == phase), key=lambda r: r["concurrency"]
    )
    for run in runs:
        summary = run.get("summary", {}).get(metric, {})
        mean = summary.get("mean")
        if mean is None:
            continue
        low, high = summary.get("ci95_low"), summary.get("ci95_high")
        xs.append(run["concurrency"])
        ys.append(mean)
        err_lo.append(mean - low if low is not None else 0.0)
        err_hi.append(high - mean if high is not None else 0.0)
    return xs, ys, [err_lo, err_hi]


def plot_decode_rates(
    results: Sequence[tuple[str, dict[str, Any]]], path: str | os.PathLike[str]
) -> Path:
    """Write a PNG: decode rate (mean with 95% CI bars) against concurrency, per file.

    Warm runs are drawn solid, cold runs (if any) dashed, since the two are never pooled.
    """
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(11, 4.2), constrained_layout=True)
    for ax, (metric, title) in zip(axes, _PANELS, strict=True):
        for label, result in results:
            for phase, style in (("warm", "-"), ("cold", "--")):
                xs, ys, err = _series(result, phase, metric)
                if not xs:
                    continue
                ax.errorbar(
                    xs,
                    ys,
                    yerr=err,
                    linestyle=style,
                    marker="o",
                    capsize=3,
                    label=label if phase == "warm" else f"{label} (cold)",
                )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        levels = sorted({r["concurrency"] for _, res in results for r in res["runs"]})
        if levels:
            ax.set_xticks(levels, [str(c) for c in levels])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
