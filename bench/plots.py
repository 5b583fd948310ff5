"""The report's PNG plots (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.metrics import bootstrap


def plot_quality(table: dict[tuple[Any, ...], dict[str, Any]], path: Path) -> None:
    """Horizontal bars: pooled nDCG@10 with its 95% interval, best at the top."""
    rows = sorted(
        ((bootstrap(v["scores"]["ndcg"]), v["label"], k[0]) for k, v in table.items()),
        key=lambda r: r[0].mean,
    )
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    means = [r[0].mean for r in rows]
    errors = [[r[0].mean - r[0].low for r in rows], [r[0].high - r[0].mean for r in rows]]
    colors = ["#4c72b0" if r[2] == "ours" else "#dd8452" for r in rows]
    ax.barh(range(len(rows)), means, xerr=errors, color=colors, capsize=2)
    ax.set_yticks(range(len(rows)), [r[1] for r in rows], fontsize=7)
    ax.set_xlabel("nDCG@10 (pooled over both query sets, 95% bootstrap interval)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_throughput(systems: dict[str, float], path: Path) -> None:
    """Bars: chunks per second per system (all datasets)."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(systems)
    ax.bar(
        names, [systems[n] for n in names], color=["#999999", "#4c72b0", "#dd8452", "#55a868"][: len(names)]
    )
    for i, name in enumerate(names):
        ax.text(i, systems[name], f"{systems[name]:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("chunks / second")
    ax.set_title("Ingestion throughput (same corpus, embedder, Weaviate)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_similarities(
    on_topic: list[float], off_topic: dict[str, list[float]], floor: float, path: Path
) -> None:
    """Histograms: best chunk similarity of answerable vs off-topic questions, and the floor."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = [i / 50 - 0.2 for i in range(61)]
    ax.hist(on_topic, bins=bins, alpha=0.6, color="#4c72b0", label="answerable questions")
    for (name, values), color in zip(off_topic.items(), ["#dd8452", "#55a868", "#c44e52"], strict=False):
        ax.hist(values, bins=bins, alpha=0.6, color=color, label=f"off-topic: {name}")
    ax.axvline(floor, color="black", linestyle="--", linewidth=1, label=f"floor {floor:.2f}")
    ax.set_xlabel("cosine similarity of the closest chunk")
    ax.set_ylabel("searches")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
