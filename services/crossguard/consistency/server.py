"""Process entry for the consistency service."""

from __future__ import annotations

import asyncio

from crossguard.consistency.clip_caption import ClipCaptionScorer
from crossguard.consistency.config import load_fusion_config
from crossguard.consistency.embedding import SentenceEncoder
from crossguard.consistency.framing import FramingHead
from crossguard.consistency.service import ConsistencyChecker, Embedder
from crossguard.consistency.servicer import ConsistencyServicer
from crossguard.consistency.settings import ConsistencySettings
from crossguard.consistency.text_client import TextServiceScorer
from crossguard.core.clip_text import ClipTextEncoder
from crossguard.core.errors import ModelError
from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.grpc_server import GrpcServer, ServiceRegistration, serve_forever
from crossguard.core.logging_setup import configure_logging
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import GrpcServerSettings, ModelSettings
from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry
from crossguard.v1 import consistency_pb2, consistency_pb2_grpc

SERVICE_NAME = consistency_pb2.DESCRIPTOR.services_by_name["ConsistencyService"].full_name


def build_checker(
    settings: ConsistencySettings, models: ModelSettings, max_message_bytes: int
) -> tuple[ConsistencyChecker, list[tuple[str, str]], TextServiceScorer | None]:
    """The checker as configured, the (name, version) of every model it uses, and the text
    client to close on shutdown."""
    config = load_fusion_config(settings.fusion_config)
    used = [(config.name, config.version)]
    repository = ModelRepository(models.model_repository)
    embedder: Embedder | None = None
    framing: FramingHead | None = None
    if settings.semantic_agreement:
        encoder = SentenceEncoder(repository, models)
        embedder = encoder
        used.append(encoder.model)
        if settings.framing_model:
            try:
                entry = repository.get(settings.framing_model)
                framing = FramingHead(entry, models, encoder.model)
            except ModelError as exc:
                raise ModelError(f"CROSSGUARD_CONSISTENCY_FRAMING_MODEL: {exc}") from exc
            used.append(framing.model)
    clip: ClipCaptionScorer | None = None
    if settings.clip_model:
        # A bad name or a non-CLIP entry fails start-up with a ModelError naming the setting.
        try:
            entry = repository.get(settings.clip_model)
            clip = ClipCaptionScorer(ClipTextEncoder(entry, models))
        except ModelError as exc:
            raise ModelError(f"CROSSGUARD_CONSISTENCY_CLIP_MODEL: {exc}") from exc
        used.append(clip.model)
    combiner = (
        TextServiceScorer(
            settings.text_endpoint,
            settings.text_deadline_ms / 1000.0,
            channels=ChannelPool(
                max_message_bytes=max_message_bytes,
                initial_backoff_ms=settings.text_retry_initial_backoff_ms,
                classify_batch_max_items=settings.text_batch_max_items,
                classify_batch_max_delay_ms=settings.text_batch_max_delay_ms,
            ),
            retries=settings.text_retries,
        )
        if settings.text_endpoint
        else None
    )
    checker = ConsistencyChecker(
        config,
        embedder=embedder,
        combiner=combiner,
        image_caption=clip,
        framing=framing,
        max_text_chars=settings.max_text_chars,
        max_results=settings.max_responses,
        embed_max_batch=settings.embed_max_batch,
    )
    return checker, used, combiner


def build_server(
    settings: GrpcServerSettings,
    consistency: ConsistencySettings | None = None,
    models: ModelSettings | None = None,
) -> GrpcServer:
    checker, used, combiner = build_checker(
        consistency or ConsistencySettings(), models or ModelSettings(), settings.max_message_bytes
    )
    servicer = ConsistencyServicer(checker, used)
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
        on_close=[checker.close, *([combiner.close] if combiner is not None else [])],
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
