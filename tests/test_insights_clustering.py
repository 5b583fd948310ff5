"""Coverage-gap clustering with the real local embedder: rephrasings of one question land together,
unrelated questions apart, and each group is labelled by its most typical question."""

from __future__ import annotations

from datetime import timedelta

from counting_embedder import CountingEmbedder
from insights_seed import NOW

from data.embeddings import LocalOnnxEmbedder
from services.insights.clustering import cluster_gaps, new_vector_cache
from services.insights.config import DEFAULT_CLUSTER_DISTANCE
from services.insights.records import NOT_COVERED, Turn, Where

TOPICS = {
    "password": [
        "How do I reset my password?",
        "how can I reset my password",
        "I forgot my password, how do I reset it?",
        "Password reset steps?",
    ],
    "vpn": [
        "How do I configure the VPN on Linux?",
        "VPN setup on Ubuntu",
        "how to connect to the vpn from linux",
    ],
    "parking": ["Where can I park my car at the office?", "Is there parking at the office?"],
}
UNRELATED = [
    "Who approves expense reports?",
    "What's the wifi password for guests?",
    "How do I deploy to staging?",
    "How do I reset my laptop to factory settings?",  # "reset" again, but not a password
    "How many days of holiday do I get?",
]


def gap_turns(questions: list[str]) -> list[Turn]:
    """One not-covered turn per question, the first one newest."""
    return [
        Turn(f"q{i}", f"t{i}", text, NOW - timedelta(minutes=i), Where("slack", "T1", "C1"), NOT_COVERED)
        for i, text in enumerate(questions)
    ]


async def test_rephrasings_cluster_together_and_unrelated_questions_apart(
    embedder: LocalOnnxEmbedder,
) -> None:
    questions = [q for topic in TOPICS.values() for q in topic] + UNRELATED
    clusters = await cluster_gaps(gap_turns(questions), embedder, DEFAULT_CLUSTER_DISTANCE)

    groups = [sorted(t.question for t in c.turns) for c in clusters]
    for topic in TOPICS.values():
        assert sorted(topic) in groups
    for question in UNRELATED:
        assert [question] in groups
    assert len(clusters) == len(TOPICS) + len(UNRELATED)

    password = clusters[0]  # the biggest first
    assert password.label == "How do I reset my password?"  # the most typical one
    assert password.keywords[:2] == ["password", "reset"] or password.keywords[:2] == ["reset", "password"]
    assert [c.count for c in clusters[:3]] == [4, 3, 2]
    singles = clusters[3:]
    assert [c.newest_at for c in singles] == sorted((c.newest_at for c in singles), reverse=True)


async def test_only_gaps_are_clustered_and_vectors_are_remembered(embedder: LocalOnnxEmbedder) -> None:
    turns = gap_turns(TOPICS["vpn"] + ["What is the deploy process?"])
    turns[-1].outcome = "answered"  # answered, no 👎: not a gap
    counting = CountingEmbedder(embedder)
    cache = new_vector_cache()
    (vpn,) = await cluster_gaps(turns, counting, DEFAULT_CLUSTER_DISTANCE, cache)
    assert vpn.count == 3 and vpn.thread_ids == ["t0", "t1", "t2"]
    assert counting.texts == 3

    more = [*turns, *gap_turns(["Where can I park my car at the office?"])]
    more[-1].question_id = "q-park"
    clusters = await cluster_gaps(more, counting, DEFAULT_CLUSTER_DISTANCE, cache)
    assert [c.count for c in clusters] == [3, 1]
    assert counting.texts == 4  # only the new question was embedded
    assert await cluster_gaps([], counting, DEFAULT_CLUSTER_DISTANCE, cache) == []
