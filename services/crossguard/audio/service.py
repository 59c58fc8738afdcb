"""The audio safety classifier (domain logic, no gRPC): the audio parts of a request go through
the AudioModel (one part per model call, micro-batched with other requests' parts), and their
analyses become one ClassifierResult: each category's maximum over parts, evidence that places
it in time (the transcript read in that range, or the event heard there), and each part's
transcript with its times, detected language and the guards that fired.
"""

from __future__ import annotations

from collections.abc import Sequence

from crossguard.audio.model import AudioAnalysis, AudioInput
from crossguard.audio.settings import AudioServiceSettings
from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.model_contract import Model
from crossguard.core.results import (
    AudioRange,
    AudioRangeEvidence,
    ClassifierResult,
    DerivedTextEvidence,
    Evidence,
    Modality,
    Score,
    StageTime,
    TimedText,
    Transcript,
)
from crossguard.core.serving.classifier import BatchedClassifier
from crossguard.core.taxonomy import Category, severity


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000.0))


def evidence_of(analysis: AudioAnalysis) -> list[Evidence]:
    """An analysis's evidence as result evidence: transcript pieces as derived text with their
    audio range, events as bare audio ranges."""
    out: list[Evidence] = []
    for e in analysis.evidence:
        where = AudioRange(_ms(e.start), _ms(e.end))
        if e.text.startswith("event: "):
            out.append(AudioRangeEvidence(e.part_id, e.category, e.weight, where))
        else:
            out.append(DerivedTextEvidence(e.part_id, e.category, e.weight, e.text, where))
    return out


def transcript_of(analysis: AudioAnalysis) -> Transcript:
    """What was heard in a part, with times, language and the guards that fired."""
    return Transcript(
        part_id=analysis.part_id,
        language=analysis.language,
        language_probability=analysis.language_probability,
        segments=[
            TimedText(AudioRange(_ms(s.start), _ms(s.end)), s.text) for s in analysis.segments
        ],
        guards=list(analysis.flags),
        duration_ms=_ms(analysis.seconds),
        speech_ms=_ms(analysis.speech_seconds),
    )


class AudioClassifier(BatchedClassifier[Sequence[AudioInput], AudioInput, AudioAnalysis]):
    """Classify the audio parts of a content item; see the module docstring."""

    def __init__(
        self,
        model: Model[AudioInput, AudioAnalysis],
        settings: AudioServiceSettings | None = None,
        *,
        owns_model: bool = True,
        metrics: ClassifierMetrics | None = None,
    ) -> None:
        self.settings = settings or AudioServiceSettings()
        super().__init__(
            model, self.settings, Modality.AUDIO, owns_model=owns_model, metrics=metrics
        )

    def validate(self, content_id: str, parts: Sequence[AudioInput]) -> None:
        s = self.settings
        if not parts:
            raise InvalidInput(f"request for content {content_id!r} has no audio parts")
        if len(parts) > s.max_parts:
            raise LimitExceeded(
                f"request has {len(parts)} audio parts; the limit is {s.max_parts} "
                "(CROSSGUARD_AUDIO_MAX_PARTS)"
            )
        seen: set[str] = set()
        for part in parts:
            if part.part_id in seen:
                raise InvalidInput(f"duplicate part_id {part.part_id!r}; part ids must be unique")
            seen.add(part.part_id)

    async def _classify(
        self, content_id: str, request: Sequence[AudioInput], max_evidence: int
    ) -> ClassifierResult:
        self.validate(content_id, request)
        analyses = await self.predict(list(request))
        scores: dict[Category, float] = dict.fromkeys(self.categories, 0.0)
        evidence: list[Evidence] = []
        stages: dict[str, float] = {}
        for analysis in analyses:
            for cat, value in analysis.scores.items():
                scores[cat] = max(scores.get(cat, 0.0), value)
            evidence.extend(evidence_of(analysis))
            for stage, millis in analysis.timings.items():
                stages[stage] = stages.get(stage, 0.0) + millis
        wanted = max_evidence if max_evidence > 0 else self.settings.default_evidence
        evidence.sort(key=lambda e: -e.weight)
        ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0].value))
        return ClassifierResult(
            modality=Modality.AUDIO,
            scores=[Score(cat, value, severity(value)) for cat, value in ordered],
            evidence=evidence[: min(wanted, self.settings.max_evidence)],
            models=list(self.model_infos),
            timings=[StageTime(stage, millis) for stage, millis in stages.items()],
            transcripts=[transcript_of(a) for a in analyses],
        )
