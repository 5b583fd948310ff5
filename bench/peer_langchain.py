"""LangChain peer (runs in bench/.venvs/langchain): RecursiveCharacterTextSplitter + the
project's ONNX MiniLM into langchain-weaviate `WeaviateVectorStore.add_documents`; the unchanged
re-index through LangChain's indexing API (`index()` with a record manager, the documented way to
skip unchanged documents); then its default retriever (`similarity_search`, top 10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_text_splitters import RecursiveCharacterTextSplitter
from langchain_weaviate import WeaviateVectorStore

from bench.peer_common import SyncEmbedder, connect, load_corpus, queries_of, read_args, timed, write_result


class OnnxEmbeddings(Embeddings):
    """The project's embedder behind LangChain's embedding interface."""

    def __init__(self, embedder: SyncEmbedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.query(text)


def chunks(corpus: Path, splitter: RecursiveCharacterTextSplitter) -> list[Document]:
    documents = [
        Document(page_content=text, metadata={"title": title, "source": relative})
        for relative, title, text in load_corpus(corpus)
    ]
    return splitter.split_documents(documents)


MODE = "langchain_core.indexing.index() with an InMemoryRecordManager, cleanup='incremental'"


def add(store: WeaviateVectorStore, corpus: Path, splitter: RecursiveCharacterTextSplitter) -> list[str]:
    """Load, split and add (what a LangChain user times as ingestion)."""
    return store.add_documents(chunks(corpus, splitter))


def reindex(
    store: WeaviateVectorStore,
    records: InMemoryRecordManager,
    corpus: Path,
    splitter: RecursiveCharacterTextSplitter,
) -> Any:
    """One pass of LangChain's indexing API (skips documents whose hash it has recorded)."""
    return index(chunks(corpus, splitter), records, store, cleanup="incremental", source_id_key="source")


def main() -> None:
    args = read_args()
    embedder = SyncEmbedder(args.get("cache"), args.get("threads"))
    embeddings = OnnxEmbeddings(embedder)
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=args["chunk_size"], chunk_overlap=args["chunk_overlap"]
    )
    client = connect(args)
    out: dict[str, Any] = {"ingest": [], "reindex": [], "retrieval": {}}
    try:
        for dataset in args["datasets"]:
            corpus = Path(dataset["corpus"])
            name = args["tag"] + dataset["name"].capitalize()
            store = WeaviateVectorStore(client, f"LangBench{name}", "text", embedding=embeddings)
            before, spent = embedder.texts, embedder.seconds
            written, seconds = timed(add, store, corpus, splitter)
            pieces = chunks(corpus, splitter)
            out["ingest"].append(
                {
                    "dataset": dataset["name"],
                    "chunks": len(written),
                    "seconds": seconds,
                    "embeddings": embedder.texts - before,
                    "embed_seconds": embedder.seconds - spent,
                    "mean_chunk_chars": sum(len(c.page_content) for c in pieces) / max(1, len(pieces)),
                }
            )
            if args["retrieve"]:
                out["retrieval"][dataset["name"]] = [
                    [doc.page_content for doc in store.similarity_search(query, k=10)]
                    for query in queries_of(dataset["queries"])
                ]
            if not args["reindex"]:
                continue
            managed = WeaviateVectorStore(client, f"LangBenchIdx{name}", "text", embedding=embeddings)
            records = InMemoryRecordManager(namespace=f"weaviate/LangBenchIdx{name}")
            records.create_schema()
            runs = []
            for _ in range(2):
                before = embedder.texts
                stats, seconds = timed(reindex, managed, records, corpus, splitter)
                runs.append({"seconds": seconds, "embeddings": embedder.texts - before, "stats": dict(stats)})
            out["reindex"].append(
                {
                    "dataset": dataset["name"],
                    "seconds": runs[1]["seconds"],
                    "embeddings": runs[1]["embeddings"],
                    "first_run": runs[0],
                    "stats": runs[1]["stats"],
                    "mode": MODE,
                }
            )
            print(f"langchain: {dataset['name']} done", flush=True)
    finally:
        client.close()
    write_result(args, out)


if __name__ == "__main__":
    main()
