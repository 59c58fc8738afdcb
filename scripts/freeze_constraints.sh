#!/usr/bin/env bash
# Rewrites constraints.txt from the current .venv (after a `pip install -e '.[cpu,build,dev]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Pinned versions of every Python dependency (direct and transitive), used as pip constraints"
  echo "# by scripts/setup.sh. Regenerate with scripts/freeze_constraints.sh after changing pyproject.toml."
  .venv/bin/pip freeze --exclude-editable
} > constraints.txt.new
mv constraints.txt.new constraints.txt
