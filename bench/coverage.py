"""Is this covered? The coverage judgement, fitted on a development set, measured on a report set.

Every message is searched as the bot searches (`Retriever.fetch`, default index and search, with
cosine similarities) and described by `services.relevance.coverage_features`. A logistic model of
"covered" is fitted on the development half only; its threshold is the highest that still answers
`TARGET_ANSWERED` of the development half's covered questions. The report half, which played no
part in either, gives the numbers published. The rule before issue 11 (cosine floor 0.15 plus the
content-word rescue) is measured on the same messages.

- development: covered = the django and python questions whose top 10 holds a relevant passage,
  and their chat-style forms (their first four key terms, lower case, no mark); off-topic = the
  Debian FAQ (other software's documentation) and the git questions asked of the django and
  python indexes, the Debian FAQ's chat-style forms, small talk and general knowledge
  (`bench.offtopic`, development lists);
- report: covered = the git questions (the corpus the bot was never tuned on) and their chat-style
  forms; off-topic = the django and python questions asked of the git index, their chat-style
  forms, and the report lists of small talk and general knowledge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench import offtopic
from bench.dataset import Dataset, judge
from bench.engine import Engine
from bench.metrics import bootstrap
from bench.quality import BASE_INDEX
from bench.relevance import DEFAULT_SEARCH, off_topic_questions
from data.records import SearchHit
from services.rag import Retriever
from services.relevance import FEATURES, MEASURED_MIN_SIMILARITY, coverage_features, covered
from simple_agents.conversation import content_words, key_terms

TARGET_ANSWERED = 0.95
TARGET_ABSTAINED = 0.90
GRID = [round(0.01 * step, 2) for step in range(101)]
_L2 = 1e-3  # a little ridge, so separable groups do not push weights to infinity


def chat_style(question: str) -> str:
    """How the same question is typed in a hurry: its first four key terms."""
    return " ".join(key_terms(question)[:4])


async def describe(engine: Engine, dataset: str, messages: Sequence[str]) -> list[dict[str, Any]]:
    """Per message: its features, whether the rule before issue 11 lets it through, and whether its
    top 10 (without any gate) holds a passage for it (filled in by the caller for covered sets)."""
    settings = engine.settings(dataset, BASE_INDEX, DEFAULT_SEARCH)
    retriever = Retriever(settings, await engine.store(BASE_INDEX.collection(dataset)), engine.embedder)
    floor = MEASURED_MIN_SIMILARITY[engine.embedder.model_id]
    rows = []
    for message in messages:
        hits = await retriever.fetch(message, settings.search_top_k, similarity=True)
        features = coverage_features(message, hits)
        rows.append(
            {
                "message": message,
                "features": features,
                "unweighted": [*features[:2], plain_share(message, hits), *features[3:]],
                "old": covered(message, hits, floor),
            }
        )
    return rows


def plain_share(question: str, hits: Sequence[SearchHit]) -> float:
    """The largest share of the question's content words in one chunk, every word counting the same:
    the third feature before the words were weighted by rarity (compared in `measure`)."""
    words = content_words(question)
    return max((len(words & content_words(h.text)) / len(words) for h in hits), default=0.0) if words else 0.0


async def covered_rows(engine: Engine, dataset: Dataset) -> list[dict[str, Any]]:
    """The set's questions and their chat-style forms that are answerable (top 10 holds a passage)."""
    questions = [q for q in dataset.queries]
    rows: list[dict[str, Any]] = []
    for form in ("question", "chat"):
        texts = [q.query if form == "question" else chat_style(q.query) for q in questions]
        found = await engine.search(dataset.name, BASE_INDEX, DEFAULT_SEARCH, texts)
        keep = [any(judge([p.text for p in f], q.answer)) for q, f in zip(questions, found, strict=True)]
        described = await describe(engine, dataset.name, [t for t, ok in zip(texts, keep, strict=True) if ok])
        rows += [{**row, "group": f"covered ({form})"} for row in described]
    return rows


async def off_rows(engine: Engine, dataset: str, groups: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for group, messages in groups.items():
        rows += [{**row, "group": group} for row in await describe(engine, dataset, messages)]
    return rows


def fit(rows: Sequence[dict[str, Any]]) -> tuple[list[float], float]:
    """Logistic regression (Newton's method), each class weighing half, with a little ridge."""
    x = np.array([[*row["features"], 1.0] for row in rows])
    y = np.array([1.0 if row["group"].startswith("covered") else 0.0 for row in rows])
    weight = np.where(y == 1, 0.5 / max(1, y.sum()), 0.5 / max(1, (1 - y).sum()))
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ beta))
        gradient = x.T @ (weight * (p - y)) + _L2 * np.r_[beta[:-1], 0]
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + _L2 * np.diag(
            np.r_[np.ones(len(beta) - 1), 0]
        )
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return [round(float(b), 4) for b in beta[:-1]], round(float(beta[-1]), 4)


def probability(features: Sequence[float], weights: Sequence[float], bias: float) -> float:
    return float(1 / (1 + np.exp(-(np.dot(features, weights) + bias))))


def rates(rows: Sequence[dict[str, Any]], passes: Sequence[bool]) -> dict[str, float]:
    """Per group: the share answered (covered groups) or abstained on (off-topic groups)."""
    out: dict[str, float] = {}
    for group in dict.fromkeys(row["group"] for row in rows):
        chosen = [ok for row, ok in zip(rows, passes, strict=True) if row["group"] == group]
        answered = sum(chosen) / len(chosen)
        out[group] = answered if group.startswith("covered") else 1 - answered
    on = [ok for row, ok in zip(rows, passes, strict=True) if row["group"].startswith("covered")]
    off = [ok for row, ok in zip(rows, passes, strict=True) if not row["group"].startswith("covered")]
    out["answered (all covered)"] = sum(on) / len(on)
    out["abstained (all off-topic)"] = 1 - sum(off) / len(off)
    return out


def curve(rows: Sequence[dict[str, Any]], weights: Sequence[float], bias: float) -> list[dict[str, Any]]:
    scores = [probability(row["features"], weights, bias) for row in rows]
    return [{"threshold": t, **rates(rows, [s >= t for s in scores])} for t in GRID]


async def measure(engine: Engine, datasets: Mapping[str, Dataset]) -> dict[str, Any]:
    for dataset in datasets.values():
        await engine.ensure_index(dataset, BASE_INDEX)
    django, python, git = datasets["django"], datasets["python"], datasets["git"]
    debian = off_topic_questions()
    git_questions = [q.query for q in git.queries]
    development: list[dict[str, Any]] = []
    for name in ("django", "python"):
        development += await covered_rows(engine, datasets[name])
        development += await off_rows(
            engine,
            name,
            {
                "Debian FAQ": debian,
                "Debian FAQ (chat)": [chat_style(q) for q in debian],
                "git questions": git_questions,
                "small talk": offtopic.SMALL_TALK_DEV,
                "general knowledge": offtopic.GENERAL_DEV,
            },
        )
        print(f"  coverage: development {name}", flush=True)
    other = [q.query for q in [*django.queries, *python.queries]]
    report = await covered_rows(engine, git) + await off_rows(
        engine,
        "git",
        {
            "django and python questions": other,
            "django and python questions (chat)": [chat_style(q) for q in other],
            "small talk": offtopic.SMALL_TALK_REPORT,
            "general knowledge": offtopic.GENERAL_REPORT,
        },
    )
    weights, bias = fit(development)
    dev_curve = curve(development, weights, bias)
    chosen = choose_threshold(dev_curve)
    report_curve = curve(report, weights, bias)
    return {
        "features": list(FEATURES),
        "weights": weights,
        "bias": bias,
        "threshold": chosen,
        "targets": {"answered": TARGET_ANSWERED, "abstained": TARGET_ABSTAINED},
        "development": {
            "curve": dev_curve,
            "counts": _counts(development),
            "at_threshold_intervals": intervals(development, weights, bias, chosen),
        },
        "report": {
            "curve": report_curve,
            "counts": _counts(report),
            "at_threshold": next(r for r in report_curve if r["threshold"] == chosen),
            "at_threshold_intervals": intervals(report, weights, bias, chosen),
            "old_rule": rates(report, [row["old"] for row in report]),
        },
        "development_old_rule": rates(development, [row["old"] for row in development]),
        "unweighted_words": unweighted(development, report),
    }


def choose_threshold(dev_curve: Sequence[dict[str, Any]]) -> float:
    """The highest threshold that still answers `TARGET_ANSWERED` of the development set's covered."""
    eligible = [r for r in dev_curve if r["answered (all covered)"] >= TARGET_ANSWERED]
    return float(max(eligible, key=lambda r: r["threshold"])["threshold"]) if eligible else 0.0


def unweighted(development: Sequence[dict[str, Any]], report: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The same judgement fitted and thresholded the same way with every content word counting the
    same (the default before the rarity weights): what the weighting gained."""
    dev = [{**row, "features": row["unweighted"]} for row in development]
    rep = [{**row, "features": row["unweighted"]} for row in report]
    weights, bias = fit(dev)
    dev_curve = curve(dev, weights, bias)
    chosen = choose_threshold(dev_curve)
    return {
        "weights": weights,
        "bias": bias,
        "threshold": chosen,
        "development": next(r for r in dev_curve if r["threshold"] == chosen),
        "development_intervals": intervals(dev, weights, bias, chosen),
        "report_intervals": intervals(rep, weights, bias, chosen),
    }


def intervals(
    rows: Sequence[dict[str, Any]], weights: Sequence[float], bias: float, threshold: float
) -> dict[str, dict[str, float]]:
    """Answered (covered) and abstained (off-topic) at `threshold`, with 95% bootstrap intervals: what
    a change of the judgement is compared by."""
    answered = [probability(row["features"], weights, bias) >= threshold for row in rows]
    pairs = list(zip(answered, rows, strict=True))
    on = [float(a) for a, row in pairs if row["group"].startswith("covered")]
    off = [float(not a) for a, row in pairs if not row["group"].startswith("covered")]
    return {"answered": bootstrap(on).as_dict(), "abstained": bootstrap(off).as_dict()}


def _counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["group"]] = counts.get(row["group"], 0) + 1
    return counts
