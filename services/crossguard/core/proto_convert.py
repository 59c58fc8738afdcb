"""Conversions between domain types (core.results) and crossguard.v1 protobuf messages."""

from __future__ import annotations

from crossguard.core.results import (
    AudioRange,
    AudioRangeEvidence,
    ClassifierResult,
    DerivedTextEvidence,
    Evidence,
    HashMatchEvidence,
    ImageRegion,
    ImageRegionEvidence,
    Modality,
    PartEmbedding,
    Score,
    StageTime,
    TextSpan,
    TextSpanEvidence,
    TimedText,
    Transcript,
    UnreadPart,
)
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, taxonomy_pb2

_MODALITY_TO_PROTO = {
    Modality.TEXT: taxonomy_pb2.MODALITY_TEXT,
    Modality.IMAGE: taxonomy_pb2.MODALITY_IMAGE,
    Modality.AUDIO: taxonomy_pb2.MODALITY_AUDIO,
}
_MODALITY_FROM_PROTO = {int(v): k for k, v in _MODALITY_TO_PROTO.items()}


def modality_to_proto(m: Modality) -> taxonomy_pb2.Modality.ValueType:
    return _MODALITY_TO_PROTO[m]


def modality_from_proto(v: int) -> Modality:
    try:
        return _MODALITY_FROM_PROTO[v]
    except KeyError:
        raise ValueError(f"unknown modality enum value {v}") from None


def score_to_proto(s: Score) -> taxonomy_pb2.CategoryScore:
    return taxonomy_pb2.CategoryScore(category=s.category.proto, score=s.score, severity=s.severity)


def score_from_proto(p: taxonomy_pb2.CategoryScore) -> Score:
    return Score(Category.from_proto(p.category), float(p.score), int(p.severity))


def _set_location(
    p: classifier_pb2.Evidence, location: TextSpan | ImageRegion | AudioRange | None
) -> None:
    if isinstance(location, TextSpan):
        p.span.SetInParent()
        p.span.start, p.span.end, p.span.text = location.start, location.end, location.text
    elif isinstance(location, ImageRegion):
        p.region.SetInParent()
        r = p.region
        r.x, r.y, r.width, r.height = location.x, location.y, location.width, location.height
    elif isinstance(location, AudioRange):
        p.time_range.SetInParent()
        p.time_range.start_ms, p.time_range.end_ms = location.start_ms, location.end_ms


def evidence_to_proto(e: Evidence, p: classifier_pb2.Evidence) -> None:
    """Write `e` into the (empty) Evidence message `p`."""
    p.part_id = e.part_id
    p.category = e.category.proto
    p.weight = e.weight
    if isinstance(e, TextSpanEvidence):
        _set_location(p, TextSpan(e.start, e.end, e.text))
    elif isinstance(e, ImageRegionEvidence):
        _set_location(p, e.region)
    elif isinstance(e, AudioRangeEvidence):
        _set_location(p, e.time_range)
    elif isinstance(e, DerivedTextEvidence):
        p.derived_text = e.text
        _set_location(p, e.location)
    else:
        p.hash_bank = e.bank
        p.hash_match.bank, p.hash_match.distance = e.bank, e.distance
        p.hash_match.entry_id = e.entry_id
    if not isinstance(e, TextSpanEvidence | AudioRangeEvidence):
        p.model, p.frame_index = e.model, e.frame_index


def _location(p: classifier_pb2.Evidence) -> TextSpan | ImageRegion | AudioRange | None:
    kind = p.WhichOneof("location")
    if kind == "span":
        return TextSpan(p.span.start, p.span.end, p.span.text)
    if kind == "region":
        r = p.region
        return ImageRegion(r.x, r.y, r.width, r.height)
    if kind == "time_range":
        return AudioRange(p.time_range.start_ms, p.time_range.end_ms)
    return None


def evidence_from_proto(p: classifier_pb2.Evidence) -> Evidence:
    """The domain evidence of `p`: a hash match (hash_match, or hash_bank alone from older
    servers), derived text (derived_text set, with its location if any), else by location.
    Raises ValueError for evidence that says none of these."""
    part_id, category, weight = p.part_id, Category.from_proto(p.category), float(p.weight)
    if p.HasField("hash_match") or p.hash_bank:
        m = p.hash_match
        return HashMatchEvidence(
            part_id,
            category,
            weight,
            m.bank or p.hash_bank,
            int(m.distance),
            m.entry_id,
            p.model,
            int(p.frame_index),
        )
    location = _location(p)
    if p.derived_text:
        return DerivedTextEvidence(
            part_id, category, weight, p.derived_text, location, p.model, int(p.frame_index)
        )
    if isinstance(location, TextSpan):
        return TextSpanEvidence(
            part_id, category, weight, location.start, location.end, location.text
        )
    if isinstance(location, ImageRegion):
        return ImageRegionEvidence(part_id, category, weight, location, p.model, int(p.frame_index))
    if isinstance(location, AudioRange):
        return AudioRangeEvidence(part_id, category, weight, location)
    raise ValueError(f"evidence for part {part_id!r} has no location, derived text or hash match")


def result_to_proto(r: ClassifierResult) -> classifier_pb2.ClassifyResponse:
    resp = classifier_pb2.ClassifyResponse(modality=modality_to_proto(r.modality))
    # add() builds each element in place; extend() would build and then copy it (this runs
    # once per request: 23 vs 41 µs for a text response).
    add_score = resp.scores.add
    for s in r.scores:
        add_score(category=s.category.proto, score=s.score, severity=s.severity)
    for e in r.evidence:
        evidence_to_proto(e, resp.evidence.add())
    for name, version in r.models:
        resp.models.add(name=name, version=version)
    for t in r.timings:
        resp.timings.add(stage=t.stage, millis=t.millis)
    for u in r.unread:
        resp.unread.add(part_id=u.part_id, reason=u.reason, detail=u.detail)
    for tr in r.transcripts:
        transcript_to_proto(tr, resp.transcripts.add())
    for emb in r.embeddings:
        out = resp.embeddings.add(part_id=emb.part_id, vector=emb.vector)
        out.model.name, out.model.version = emb.model
    return resp


def transcript_to_proto(t: Transcript, out: classifier_pb2.Transcript) -> None:
    out.part_id = t.part_id
    out.language = t.language
    out.language_probability = t.language_probability
    for seg in t.segments:
        piece = out.segments.add(text=seg.text)
        piece.time_range.start_ms = seg.time_range.start_ms
        piece.time_range.end_ms = seg.time_range.end_ms
    out.guards.extend(t.guards)
    out.duration_ms = t.duration_ms
    out.speech_ms = t.speech_ms


def transcript_from_proto(p: classifier_pb2.Transcript) -> Transcript:
    return Transcript(
        part_id=p.part_id,
        language=p.language,
        language_probability=p.language_probability,
        segments=[
            TimedText(AudioRange(s.time_range.start_ms, s.time_range.end_ms), s.text)
            for s in p.segments
        ],
        guards=list(p.guards),
        duration_ms=p.duration_ms,
        speech_ms=p.speech_ms,
    )


def result_from_proto(p: classifier_pb2.ClassifyResponse) -> ClassifierResult:
    return ClassifierResult(
        modality=modality_from_proto(p.modality),
        scores=[score_from_proto(s) for s in p.scores],
        evidence=[evidence_from_proto(e) for e in p.evidence],
        models=[(m.name, m.version) for m in p.models],
        timings=[StageTime(t.stage, t.millis) for t in p.timings],
        unread=[UnreadPart(u.part_id, u.reason, u.detail) for u in p.unread],
        transcripts=[transcript_from_proto(t) for t in p.transcripts],
        embeddings=[
            PartEmbedding(e.part_id, (e.model.name, e.model.version), tuple(e.vector))
            for e in p.embeddings
        ],
    )
