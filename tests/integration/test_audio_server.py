"""`python -m crossguard.audio` as a real process on a random port with the real weights: health,
a spoken threat flagged with its time range, a benign clip allowed, bad inputs as clear
INVALID_ARGUMENT errors (over unary and stream calls)."""

from __future__ import annotations

import asyncio
import io
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossguard.core.media import FileMediaStore, MediaReason
from crossguard.core.model_repository import ModelRepository
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.results import DerivedTextEvidence
from crossguard.core.serving.servicer import SERVICE_NAME
from crossguard.core.taxonomy import Category
from crossguard.models.speech_synth import concat_wav, flite_wav, silence_wav
from crossguard.pipeline.dead_letter import DLQ_REASON_HEADER
from crossguard.pipeline.process import Processor
from crossguard.pipeline.records import Outcome
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    content_pb2,
    taxonomy_pb2,
)

if TYPE_CHECKING:
    from conftest import GrpcServiceFactory

pytestmark = pytest.mark.integration


def _audio(part_id: str, data: bytes, mime: str = "audio/wav") -> content_pb2.ContentPart:
    return content_pb2.ContentPart(
        part_id=part_id, media=content_pb2.Media(mime_type=mime, inline_data=data)
    )


def _silent_wav(seconds: float, rate: int, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * channels * int(seconds * rate))
    return out.getvalue()


MAX_SECONDS = 12  # the server's CROSSGUARD_AUDIO_MAX_SECONDS here (the clips last a few s; the
# too-long one, 13 s at 8 kHz, stays inline: under the pipeline's 256 KiB inline limit)


def test_audio_server_end_to_end(
    start_grpc: GrpcServiceFactory, model_repository: ModelRepository, tmp_path: Path
) -> None:
    media_root = tmp_path / "media"
    proc = start_grpc(
        "audio",
        "crossguard.audio",
        CROSSGUARD_MODEL_REPOSITORY=str(model_repository.root),
        CROSSGUARD_ONNX_PROVIDERS="CPUExecutionProvider",
        CROSSGUARD_MEDIA_FILE_ROOT=str(media_root),
        CROSSGUARD_AUDIO_MAX_SECONDS=str(MAX_SECONDS),
    )
    threat = concat_wav(
        [silence_wav(1.5), flite_wav("I am going to kill you and your whole family tonight.")]
    )
    benign = flite_wav("The weather is lovely today, let us go for a walk in the park.")
    with grpc.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)

        # The threat inline, the benign clip by reference (file://, as `crossguard moderate`
        # and the demo send media).
        by_ref = FileMediaStore(media_root).put(benign, "audio/wav")
        response = stub.Classify(
            classifier_pb2.ClassifyRequest(
                content_id="c1",
                parts=[
                    _audio("voice", threat),
                    content_pb2.ContentPart(part_id="calm", media=by_ref),
                ],
            ),
            timeout=120,
        )
        result = result_from_proto(response)
        assert result.modality.value == "audio"
        assert result.score_of(Category.VIOLENCE) is not None
        assert result.score_of(Category.VIOLENCE) >= 0.5  # type: ignore[operator]
        assert {name for name, _ in result.models} >= {"silero-vad", "whisper-base"}
        transcripts = {t.part_id: t for t in result.transcripts}
        assert transcripts["voice"].language == "en"
        assert "kill" in " ".join(s.text for s in transcripts["voice"].segments).lower()
        assert "walk in the park" in " ".join(s.text for s in transcripts["calm"].segments).lower()
        assert transcripts["voice"].segments[0].time_range.start_ms >= 1100
        spoken = [e for e in result.evidence if isinstance(e, DerivedTextEvidence)]
        assert spoken, result.evidence
        for e in spoken:
            assert e.part_id == "voice"  # never the benign part
            assert "kill" in e.text.lower()
            assert e.location is not None
            assert 1100 <= e.location.start_ms <= 1700  # type: ignore[union-attr]
            assert e.location.end_ms > e.location.start_ms + 1500  # type: ignore[union-attr]

        bad = [
            ([_audio("x", b"definitely not audio" * 100)], "media_undecodable: "),
            ([_audio("x", threat, mime="image/png")], "media type"),
            ([content_pb2.ContentPart(part_id="t", text="hello")], "audio parts only"),
            ([], "no audio parts"),
        ]
        for parts, message in bad:
            with pytest.raises(grpc.RpcError) as err:
                stub.Classify(
                    classifier_pb2.ClassifyRequest(content_id="bad", parts=parts), timeout=30
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in (err.value.details() or "")

        # A stream answers each request in order; a bad one does not end it.
        requests = [
            classifier_pb2.ClassifyStreamRequest(
                request=classifier_pb2.ClassifyRequest(content_id=cid, parts=parts)
            )
            for cid, parts in (
                ("s1", [_audio("a", b"\x00garbage" * 64)]),
                ("s2", [_audio("a", benign)]),
            )
        ]
        answers = list(stub.ClassifyStream(iter(requests), timeout=120))
        assert [a.content_id for a in answers] == ["s1", "s2"]
        assert answers[0].WhichOneof("outcome") == "error"
        assert answers[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        calm = result_from_proto(answers[1].response)
        assert calm.evidence == []

    # The pipeline's processor against this server: an undecodable part or one over a limit
    # dead-letters the item with its reason; a spoken threat is decided from the audio signal.
    def item(cid: str, data: bytes, *extra: content_pb2.ContentPart) -> bytes:
        return content_pb2.ContentItem(
            id=cid, tenant="acme", surface="comment", parts=[_audio("voice-0", data), *extra]
        ).SerializeToString()

    async def through_pipeline() -> list[Outcome]:
        processor = Processor(
            PipelineSettings(audio_endpoint=f"127.0.0.1:{proc.port}"),
            media_store=FileMediaStore(tmp_path / "review-media"),
        )
        try:
            raws = [
                item("a-bad", b"RIFF" + b"\x00" * 600),
                item("a-threat", threat),
                # No text service here: the caption's signal is missing and the policy's
                # fallback escalates, so the benign voice message goes to review.
                item("a-review", benign, content_pb2.ContentPart(part_id="cap", text="hi")),
                item("a-long", _silent_wav(MAX_SECONDS + 1, 8000)),
                item("a-rate", _silent_wav(0.5, 4000)),  # under the 8 kHz default minimum
                item("a-channels", _silent_wav(0.5, 16_000, channels=9)),  # default most: 8
            ]
            return [await asyncio.wait_for(processor.process(r, source="test"), 120) for r in raws]
        finally:
            await processor.close()

    bad_outcome, threat_outcome, review_outcome, *over_limits = asyncio.run(through_pipeline())
    expected = ["media_audio_too_long", "media_audio_sample_rate", "media_audio_too_many_channels"]
    assert [(o.kind, o.dlq_code) for o in over_limits] == [("dlq", code) for code in expected]
    for outcome, code in zip(over_limits, expected, strict=True):
        (record,) = outcome.records
        reason = dict(record.headers)[DLQ_REASON_HEADER].decode()
        assert reason.startswith(f"audio classifier: {code}: "), reason
    assert (bad_outcome.kind, bad_outcome.dlq_code) == ("dlq", MediaReason.UNDECODABLE)
    (record,) = bad_outcome.records
    reason = dict(record.headers)[DLQ_REASON_HEADER].decode()
    assert reason.startswith("audio classifier: media_undecodable: "), reason
    assert threat_outcome.kind == "decision" and threat_outcome.decision is not None
    decision = threat_outcome.decision
    assert taxonomy_pb2.MODALITY_AUDIO not in [m.modality for m in decision.missing_signals]
    assert decision.action in (taxonomy_pb2.ACTION_ESCALATE, taxonomy_pb2.ACTION_BLOCK)
    # The decision's audio evidence carries the whole timed transcript of the part, the
    # flagged range inside it.
    (audio_group,) = [g for g in decision.evidence if g.modality == taxonomy_pb2.MODALITY_AUDIO]
    (heard,) = audio_group.transcripts
    assert heard.part_id == "voice-0" and heard.language == "en" and heard.omitted_segments == 0
    assert "kill" in " ".join(s.text for s in heard.segments).lower()
    assert heard.segments[0].time_range.start_ms >= 1100
    flagged = audio_group.evidence[0].time_range
    assert any(
        s.time_range.start_ms < flagged.end_ms and flagged.start_ms < s.time_range.end_ms
        for s in heard.segments
    )

    # An escalated item: its review task carries the transcript (in the decision under review)
    # and the audio by reference, never the bytes.
    assert review_outcome.review is not None, review_outcome.decision
    task = review_outcome.review
    (group,) = [g for g in task.decision.evidence if g.modality == taxonomy_pb2.MODALITY_AUDIO]
    (calm,) = group.transcripts
    assert not group.evidence  # nothing flagged; the transcript travels all the same
    assert "walk in the park" in " ".join(s.text for s in calm.segments).lower()
    assert all(s.time_range.end_ms > s.time_range.start_ms for s in calm.segments)
    assert task.item.parts[0].media.WhichOneof("source") == "uri"
