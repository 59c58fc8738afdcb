#!/usr/bin/env bash
# The whole check suite: generated-code drift, proto lint, ruff, mypy, manifests, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "==> generated proto code is up to date"
scripts/gen_protos.sh >/dev/null
if ! git diff --exit-code --stat -- services/crossguard/v1; then
  echo "error: generated code drifted from protos/; run scripts/gen_protos.sh and commit" >&2
  exit 1
fi
if [ -n "$(git status --porcelain -- services/crossguard/v1)" ]; then
  git status --porcelain -- services/crossguard/v1
  echo "error: untracked generated files; run scripts/gen_protos.sh and commit" >&2
  exit 1
fi

if [ -x tools/node_modules/.bin/buf ]; then
  echo "==> buf lint"
  (cd protos && ../tools/node_modules/.bin/buf lint)
  if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:protos/buf.yaml 2>/dev/null; then
    echo "==> buf breaking (against HEAD~1)"
    (cd protos && ../tools/node_modules/.bin/buf breaking --against "../.git#ref=HEAD~1,subdir=protos")
  fi
fi

echo "==> ruff"
ruff check services tests
ruff format --check services tests

echo "==> mypy"
mypy

# Contracts in pyproject.toml [tool.importlinter]: packages layered, no import cycles.
echo "==> import contracts"
lint-imports --no-cache

# Kubernetes manifests and Dockerfiles are checked by the deploy test layer, tests/deploy/
# (marker `deploy`: kustomize render, kubernetes-validate --strict, hadolint), which pytest runs
# below with the other layers; `pytest -m deploy` runs it alone. scripts/validate_k8s.sh runs
# the same tools by hand.

echo "==> pytest"
pytest "$@"
