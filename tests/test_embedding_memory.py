"""The local embedder's memory: onnxruntime keeps its largest run's memory for the process's life,
so how many tokens go into one run decides the indexer's peak RSS."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from data.embeddings import MAX_RUN_TOKENS, model_runs


def test_model_runs_cover_every_row_in_order_within_the_budget() -> None:
    lengths = [3, 250, 256, 7, 7, 7, 120, 300, 1]
    runs = list(model_runs(lengths, 512))
    assert [row for start, end in runs for row in range(start, end)] == list(range(len(lengths)))
    for start, end in runs:
        assert end - start == 1 or (end - start) * max(lengths[start:end]) <= 512
    assert (7, 8) in runs  # a row over the budget runs alone
    assert list(model_runs([], 512)) == []


def test_a_batch_of_long_chunks_keeps_rss_near_the_loaded_model() -> None:
    """32 chunks of 256 tokens took 580 MB more than the loaded model when they were one run of
    the model; runs of MAX_RUN_TOKENS keep that to a few dozen. Measured in a fresh process."""
    script = textwrap.dedent(
        """
        import asyncio
        from pathlib import Path
        from data.embeddings import LocalOnnxEmbedder

        def peak_mib():
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024

        async def main():
            embedder = LocalOnnxEmbedder(batch_size=32)
            await embedder.warm_up()
            await embedder.embed_documents(["warm up"])
            loaded = peak_mib()
            sentence = "rollouts stop at the first failed health check "
            texts = [f"chunk {n} " + sentence * 40 for n in range(32)]
            await embedder.embed_documents(texts)
            print(loaded, peak_mib())

        asyncio.run(main())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    loaded, peak = (int(value) for value in out.split())
    assert MAX_RUN_TOKENS <= 1024
    assert peak - loaded < 150, f"embedding 32 long chunks raised the peak RSS from {loaded} to {peak} MiB"
