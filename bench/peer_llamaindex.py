"""LlamaIndex peer (runs in bench/.venvs/llamaindex): `IngestionPipeline` (SentenceSplitter +
the project's ONNX MiniLM) into `WeaviateVectorStore`, with a docstore for change detection;
then its default retriever (`VectorStoreIndex.as_retriever`, top 10) on the queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.vector_stores.weaviate import WeaviateVectorStore
from pydantic import PrivateAttr

from bench.peer_common import SyncEmbedder, connect, load_corpus, queries_of, read_args, timed, write_result


class OnnxEmbedding(BaseEmbedding):
    """The project's embedder behind LlamaIndex's embedding interface."""

    _embedder: SyncEmbedder = PrivateAttr()

    def __init__(self, embedder: SyncEmbedder) -> None:
        super().__init__(model_name="all-MiniLM-L6-v2-onnx-int8", embed_batch_size=32)
        self._embedder = embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.query(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._embedder.query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.documents([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.documents(texts)


def documents(corpus: Path) -> list[Document]:
    return [
        Document(text=text, id_=relative, metadata={"title": title, "source": relative})
        for relative, title, text in load_corpus(corpus)
    ]


def ingest(pipeline: IngestionPipeline, corpus: Path) -> list[Any]:
    """Load the corpus and run the pipeline (what a LlamaIndex user times as ingestion)."""
    return list(pipeline.run(documents=documents(corpus)))


def main() -> None:
    args = read_args()
    embedder = SyncEmbedder(args.get("cache"), args.get("threads"))
    model = OnnxEmbedding(embedder)
    client = connect(args)
    out: dict[str, Any] = {"ingest": [], "reindex": [], "retrieval": {}}
    try:
        for dataset in args["datasets"]:
            store = WeaviateVectorStore(
                weaviate_client=client, index_name=f"LlamaBench{args['tag']}{dataset['name'].capitalize()}"
            )
            pipeline = IngestionPipeline(
                transformations=[
                    SentenceSplitter(chunk_size=args["tokens"], chunk_overlap=args["overlap_tokens"]),
                    model,
                ],
                vector_store=store,
                docstore=SimpleDocumentStore(),
            )
            before, spent = embedder.texts, embedder.seconds
            nodes, seconds = timed(ingest, pipeline, Path(dataset["corpus"]))
            out["ingest"].append(
                {
                    "dataset": dataset["name"],
                    "chunks": len(nodes),
                    "seconds": seconds,
                    "embeddings": embedder.texts - before,
                    "embed_seconds": embedder.seconds - spent,
                    "mean_chunk_chars": sum(len(n.get_content()) for n in nodes) / max(1, len(nodes)),
                }
            )
            if args["reindex"]:
                before = embedder.texts
                again, seconds = timed(ingest, pipeline, Path(dataset["corpus"]))
                out["reindex"].append(
                    {
                        "dataset": dataset["name"],
                        "seconds": seconds,
                        "embeddings": embedder.texts - before,
                        "nodes_returned": len(again),
                        "mode": "same IngestionPipeline with a SimpleDocumentStore (upserts)",
                    }
                )
            if not args["retrieve"]:
                continue
            retriever = VectorStoreIndex.from_vector_store(store, embed_model=model).as_retriever(
                similarity_top_k=10
            )
            out["retrieval"][dataset["name"]] = [
                [hit.node.get_content() for hit in retriever.retrieve(query)]
                for query in queries_of(dataset["queries"])
            ]
            print(f"llamaindex: {dataset['name']} done", flush=True)
    finally:
        client.close()
    write_result(args, out)


if __name__ == "__main__":
    main()
