"""Benchmarks, outside the runtime packages: a reusable gRPC load generator (load), the naive
baselines (naive), serving's cost besides the model and grpc.aio's floor (grpc_cost, constant,
floor), the report tables (report) and the text bench that puts them together (text,
`crossguard bench text`). Nothing in the services imports this package.
"""
