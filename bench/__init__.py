"""Benchmarks run by hand (`python -m bench` / `make bench`): retrieval quality, ingestion speed
against LlamaIndex and LangChain, `ask` latency and memory. Results go to docs/benchmarks.md."""
