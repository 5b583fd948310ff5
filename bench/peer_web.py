"""The peers' web loaders on the bench's documentation site (runs in bench/.venvs/<peer>).

Each loader fetches the site twice, as a scheduled refresh would. For each pass: the server's
counts (requests, bodies, bytes; read from the site's /_bench/ endpoints), the documents loaded,
the chunks the peer's splitter makes (the texts a rebuild such as `add_documents` /
`VectorStoreIndex.from_documents` embeds), and what the peer's own de-duplication passes on to
the embedder: LangChain's indexing API (`index()` with a record manager) and LlamaIndex's
`IngestionPipeline` with a docstore. Embedders are not run: the counting embedder records the
texts it is given and returns a constant vector.

- LangChain: `RecursiveUrlLoader` from the start page (base_url = the manual's folder,
  max_depth 8 = WEB_MAX_DEPTH, BeautifulSoup text extraction as in its documentation).
- LlamaIndex: `SimpleWebPageReader(html_to_text=True)` on the site's HTML pages (LlamaIndex's
  only whole-site crawler, WholeSiteReader, drives a Selenium browser).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _control(base: str, action: str) -> dict[str, Any]:
    method = "POST" if action == "reset" else "GET"
    with urllib.request.urlopen(urllib.request.Request(base + action, method=method)) as response:
        return dict(json.loads(response.read()))


def langchain_runner(args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from bs4 import BeautifulSoup
    from langchain_community.document_loaders import RecursiveUrlLoader
    from langchain_core.embeddings import Embeddings
    from langchain_core.indexing import InMemoryRecordManager, index
    from langchain_core.vectorstores import InMemoryVectorStore
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    class CountingEmbeddings(Embeddings):
        texts = 0

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            CountingEmbeddings.texts += len(texts)
            return [[1.0, 0.0, 0.0, 0.0] for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            return [1.0, 0.0, 0.0, 0.0]

    def extract(html: str) -> str:
        return BeautifulSoup(html, "html.parser").get_text("\n")

    size, overlap = args["chunk_size"], args["chunk_overlap"]
    splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
    records = InMemoryRecordManager("bench-web")
    records.create_schema()
    store = InMemoryVectorStore(CountingEmbeddings())

    def one_pass() -> dict[str, Any]:
        documents = []
        for site in args["sites"]:
            start, folder = site["start"], site["folder"]
            loader = RecursiveUrlLoader(start, max_depth=8, extractor=extract, base_url=folder)
            documents.extend(loader.load())
        fetched = time.perf_counter()
        chunks = splitter.split_documents(documents)
        before = CountingEmbeddings.texts
        outcome = index(chunks, records, store, cleanup="incremental", source_id_key="source")
        return {
            "documents": len(documents),
            "chunks": len(chunks),
            "dedup_embedded": CountingEmbeddings.texts - before,
            "dedup_outcome": dict(outcome),
            "fetched_at": fetched,
        }

    return one_pass


def llamaindex_runner(args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.storage.docstore import SimpleDocumentStore
    from llama_index.readers.web import SimpleWebPageReader

    splitter = SentenceSplitter(chunk_size=args["tokens"], chunk_overlap=args["overlap_tokens"])
    pipeline = IngestionPipeline(transformations=[splitter], docstore=SimpleDocumentStore())
    urls = [url for site in args["sites"] for url in site["pages"]]

    def one_pass() -> dict[str, Any]:
        documents = SimpleWebPageReader(html_to_text=True).load_data(urls)
        fetched = time.perf_counter()
        chunks = splitter.get_nodes_from_documents(documents)
        passed_on = pipeline.run(documents=documents)  # de-duplicated by the docstore's hashes
        return {
            "documents": len(documents),
            "chunks": len(chunks),
            "dedup_embedded": len(passed_on),
            "fetched_at": fetched,
        }

    return one_pass


def main() -> None:
    args = json.loads(sys.argv[1])
    runner = {"langchain": langchain_runner, "llamaindex": llamaindex_runner}[args["peer"]](args)
    passes = []
    for number in (1, 2):
        _control(args["control"], "reset")
        started = time.perf_counter()
        row = runner()
        row["fetch_seconds"] = row.pop("fetched_at") - started
        row["seconds"] = time.perf_counter() - started
        row["served"] = _control(args["control"], "counts")
        row["pass"] = number
        passes.append(row)
        print(f"    {args['peer']} pass {number}: {json.dumps(row)}", flush=True)
    Path(args["out"]).write_text(json.dumps({"passes": passes}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
