"""The `pallets` report set (bench/build_pallets.py) measured with the current defaults, nothing tuned.

- Ranking: `Retriever.search(k=10)` with the default index and search settings and no gate (as the
  quality sweep); MRR@10, hit@1 (the first passage holds an answer sentence) and hit@10.
- Is this covered?: the same search with the coverage judgement at its default threshold (as the bot
  runs: `SEARCH_MIN_COVERAGE` unset); a covered question is answered when the search returns
  passages, an off-topic message is abstained on when it returns none. Covered questions count when
  their ungated top 10 holds a relevant passage (as in bench/coverage.py: the gate cannot help the
  others); all covered questions are reported too.
- Offline answers: the first sentence shown (bench/answers.py) on the answerable questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench import answers
from bench.build_pallets import load_off_topic
from bench.dataset import Dataset, judge
from bench.engine import Engine
from bench.metrics import bootstrap, score_query
from bench.quality import BASE_INDEX
from bench.relevance import DEFAULT_SEARCH
from services.rag import Retriever

# Thresholds shown around the default (shown too), to show the trade-off; none is chosen on this set.
SHOWN_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6)


def _estimates(values: Sequence[float]) -> dict[str, float]:
    return bootstrap(values).as_dict()


async def measure(engine: Engine, dataset: Dataset) -> dict[str, Any]:
    await engine.ensure_index(dataset, BASE_INDEX)
    queries = dataset.queries
    found = await engine.search(dataset.name, BASE_INDEX, DEFAULT_SEARCH, [q.query for q in queries])
    ranking: dict[str, dict[str, list[float]]] = {}
    answerable: list[bool] = []
    for query, passages in zip(queries, found, strict=True):
        scores = score_query(judge([p.text for p in passages], query.answer), len(query.answer))
        answerable.append(scores.mrr > 0)
        for kind in ("all", query.kind):
            values = ranking.setdefault(kind, {"mrr": [], "hit1": [], "hit10": []})
            values["mrr"].append(scores.mrr)
            values["hit1"].append(float(scores.mrr == 1.0))
            values["hit10"].append(float(scores.mrr > 0))
    settings = engine.settings(dataset.name, BASE_INDEX, DEFAULT_SEARCH).model_copy(
        update={"search_min_similarity": None}
    )
    retriever = Retriever(settings, await engine.store(BASE_INDEX.collection(dataset.name)), engine.embedder)
    judge_ = retriever.coverage_judge
    if judge_ is None:
        raise RuntimeError("no coverage judgement is measured for the bench's embedder")
    rows: list[dict[str, Any]] = []
    for query, ok in zip(queries, answerable, strict=True):
        rows.append({"group": f"covered ({query.kind})", "answerable": ok, "message": query.query})
    for group, messages in load_off_topic(dataset.root).items():
        rows += [{"group": group, "answerable": False, "message": m} for m in messages]
    for row in rows:
        hits = await retriever.fetch(row["message"], settings.search_top_k, similarity=True)
        row["probability"] = judge_.probability(row["message"], hits)
        row["answered"] = bool(await retriever.search(row["message"]))  # the gate as the bot runs it
    offline = await answers.measure(engine, [dataset])
    return {
        "ranking": {kind: {m: _estimates(v) for m, v in row.items()} for kind, row in ranking.items()},
        "counts": {kind: len(row["mrr"]) for kind, row in ranking.items()},
        "threshold": judge_.threshold,
        "coverage": _coverage(rows, judge_.threshold),
        "curve": [{"threshold": t, **_rates(rows, t)} for t in sorted({*SHOWN_THRESHOLDS, judge_.threshold})],
        "offline": offline["sets"][dataset.name],
        "machine": offline["machine"],
        "manifest": dataset.manifest,
    }


def _coverage(rows: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Share answered (covered) or abstained on (off-topic), per group, at the default threshold."""
    out: dict[str, Any] = {}
    groups = list(dict.fromkeys(row["group"] for row in rows))
    covered = [r for r in rows if r["group"].startswith("covered")]
    subsets = {
        "covered, answerable": [r for r in covered if r["answerable"]],
        "covered, all": covered,
        **{f"{g}, answerable": [r for r in covered if r["group"] == g and r["answerable"]] for g in groups},
        "off-topic, all": [r for r in rows if not r["group"].startswith("covered")],
        **{g: [r for r in rows if r["group"] == g] for g in groups if not g.startswith("covered")},
    }
    for name, chosen in subsets.items():
        if not chosen:
            continue
        on_topic = name.startswith("covered")
        values = [float(r["answered"] if on_topic else not r["answered"]) for r in chosen]
        out[name] = {"count": len(values), **_estimates(values)}
    # The gate as run must agree with the judgement's probability at its threshold.
    out["disagreements"] = sum((r["probability"] >= threshold) != r["answered"] for r in rows)
    return out


def _rates(rows: Sequence[dict[str, Any]], threshold: float) -> dict[str, float]:
    on = [r["probability"] >= threshold for r in rows if r["group"].startswith("covered") and r["answerable"]]
    off = [r["probability"] >= threshold for r in rows if not r["group"].startswith("covered")]
    return {"answered": sum(on) / max(1, len(on)), "abstained": 1 - sum(off) / max(1, len(off))}
