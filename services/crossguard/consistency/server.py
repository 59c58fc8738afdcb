"""Process entry for the consistency service."""

from __future__ import annotations

import asyncio

from crossguard.consistency.servicer import ConsistencyServicer
from crossguard.core.grpc_server import GrpcServer, ServiceRegistration, serve_forever
from crossguard.core.logging_setup import configure_logging
from crossguard.core.settings import GrpcServerSettings
from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry
from crossguard.v1 import consistency_pb2, consistency_pb2_grpc

SERVICE_NAME = consistency_pb2.DESCRIPTOR.services_by_name["ConsistencyService"].full_name


def build_server(settings: GrpcServerSettings) -> GrpcServer:
    servicer = ConsistencyServicer()
    return GrpcServer(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME,
                lambda s: consistency_pb2_grpc.add_ConsistencyServiceServicer_to_server(
                    servicer, s
                ),
            )
        ],
    )


async def _main() -> None:
    settings = GrpcServerSettings()
    configure_logging(settings.log_level)
    setup_telemetry("crossguard-consistency")
    try:
        await serve_forever(build_server(settings))
    finally:
        shutdown_telemetry()


def main() -> None:
    asyncio.run(_main())
