"""The bench's parts, in the order a full run measures them (`python -m bench --parts …`)."""

PARTS = (
    "dataset",
    "ingest",
    "peers",
    "quality",
    "relevance",
    "coverage",
    "followups",
    "answers",
    "rerank",
    "rerank_latency",
    "pallets",
    "latency",
    "memory",
    "sources",
    "replicas",
    "spaces",
    "report",
)
