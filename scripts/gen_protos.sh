#!/usr/bin/env bash
# Regenerates the Python code and type stubs for protos/ into services/crossguard/v1/.
# CI runs this and fails when the result differs from what is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=services
rm -f "$out"/crossguard/v1/*_pb2*.py "$out"/crossguard/v1/*_pb2*.pyi
python -m grpc_tools.protoc -Iprotos \
  --python_out="$out" --mypy_out="$out" \
  --grpc_python_out="$out" --mypy_grpc_out="$out" \
  protos/crossguard/v1/*.proto 2> >(grep -v '^Writing mypy to' >&2)
# Protos without a service get no (empty) *_pb2_grpc modules.
for proto in protos/crossguard/v1/*.proto; do
  if ! grep -q '^service ' "$proto"; then
    base=$(basename "$proto" .proto)
    rm -f "$out/crossguard/v1/${base}_pb2_grpc.py" "$out/crossguard/v1/${base}_pb2_grpc.pyi"
  fi
done
touch "$out/crossguard/v1/__init__.py"
