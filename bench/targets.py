"""The issue's targets against the measured numbers (the table at the top of docs/benchmarks.md)."""

from __future__ import annotations

from bench.quality import load


def _row(target: str, measured: str, met: bool | None) -> str:
    verdict = "—" if met is None else ("met" if met else "**not met**")
    return f"| {target} | {measured} | {verdict} |"


def targets_table() -> list[str]:
    rows: list[str] = []
    ingest = load("ingest")
    peers = load("peers")
    latency = load("latency")
    if ingest:
        ours = ingest["ours"]
        rate = sum(r["chunks"] for r in ours) / sum(r["seconds"] for r in ours)
        raw = sum(r["raw_chunks"] for r in ours) / sum(r["raw_seconds"] for r in ours)
        rows.append(
            _row(
                "indexing ≥ 0.9× the bare embedder",
                f"{rate / raw:.2f}× ({rate:.1f} vs {raw:.1f} chunks/s)",
                rate / raw >= 0.9,
            )
        )
        for name, result in (peers or {}).get("speed", {}).items():
            peer = sum(r["chunks"] for r in result["ingest"]) / sum(r["seconds"] for r in result["ingest"])
            ceiling = raw / peer  # what a pipeline with no cost but the shared embedder could reach
            measured = (
                f"{rate / peer:.2f}× ({peer:.1f} chunks/s); at most {ceiling:.2f}× "
                "(the bare embedder on our chunks)"
            )
            rows.append(_row(f"indexing ≥ 2× {name}", measured, rate / peer >= 2))
        share = max(r["reindex_seconds"] / r["seconds"] for r in ours)
        embedded = sum(r["reindex_embeddings"] + r["reindex_embedder_calls"] for r in ours)
        rows.append(
            _row(
                "unchanged re-index ≤ 5% of a full index, 0 embeddings",
                f"{share:.1%} of full, {embedded} embeddings",
                share <= 0.05 and embedded == 0,
            )
        )
    if latency:
        levels = {level["concurrency"]: level for level in latency["levels"]}
        first = levels.get(1)
        if first:
            rows.append(
                _row(
                    "bot overhead (all but query embedding and Weaviate) ≤ 25% at p50",
                    f"{first['rest_share_p50']:.0%} at 1 conversation ({first['rest']['p50_ms']:.0f} of "
                    f"{first['total']['p50_ms']:.0f} ms)",
                    first["rest_share_p50"] <= 0.25,
                )
            )
            top = levels[max(levels)]
            flat = top["rest"]["p50_ms"] <= 1.5 * first["rest"]["p50_ms"]
            rows.append(
                _row(
                    "… and flat up to 50 concurrent conversations",
                    f"rest p50 {first['rest']['p50_ms']:.0f} ms at 1 → {top['rest']['p50_ms']:.0f} ms at "
                    f"{top['concurrency']} (share {top['rest_share_p50']:.0%})",
                    flat,
                )
            )
    if not rows:
        return []
    return ["## Targets\n", "| target (issue) | measured | |", "|---|---|---|", *rows, ""]
