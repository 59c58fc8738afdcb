"""What the task view shows, from the stored item and the decision under review: text with
its evidence spans highlighted, media references with OCR text, an audio part's whole timed
transcript with the flagged segments highlighted (and the flagged pieces), hash matches,
per-category scores, the models that scored, and the policy rule that fired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossguard.core.taxonomy import Category
from crossguard.review.outcomes import ACTION_NAMES
from crossguard.v1 import classifier_pb2, content_pb2, decision_pb2, taxonomy_pb2

MODALITY = {
    taxonomy_pb2.MODALITY_TEXT: "text",
    taxonomy_pb2.MODALITY_IMAGE: "image",
    taxonomy_pb2.MODALITY_AUDIO: "audio",
}


@dataclass
class Segment:
    text: str
    category: str = ""  # non-empty: highlighted as evidence for this category


@dataclass
class TranscriptLine:
    stamp: str  # "mm:ss.mmm–mm:ss.mmm"
    start_ms: int
    text: str
    category: str = ""  # non-empty: overlaps evidence for this category (highlighted)


@dataclass
class ShownPart:
    part_id: str
    kind: str  # text, image, audio, media
    segments: list[Segment] = field(default_factory=list)
    mime_type: str = ""
    sha256: str = ""
    reference: str = ""  # the URI's scheme and path tail, never the bytes
    has_uri: bool = False
    ocr: list[str] = field(default_factory=list)
    # The flagged pieces of an audio part: (time range, text heard), from the evidence.
    flagged: list[tuple[str, str]] = field(default_factory=list)
    # The part's whole timed transcript as the decision carries it (capped by the pipeline).
    transcript: list[TranscriptLine] = field(default_factory=list)
    language: str = ""
    omitted_segments: int = 0  # left out by the cap
    guards: list[str] = field(default_factory=list)
    hash_matches: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)


@dataclass
class Shown:
    expired: bool
    parts: list[ShownPart]
    scores: list[tuple[str, float, int]]
    models: list[str]
    rule: str
    reasons: list[str]
    policy_version: str
    action: str
    decided_by: str
    missing: list[str]
    consistency: list[tuple[str, float, str]]


def _category(value: int) -> str:
    try:
        return Category.from_proto(value).value
    except ValueError:
        return "unknown"


def _timestamp(ms: int) -> str:
    minutes, rest = divmod(ms, 60_000)
    return f"{minutes:02d}:{rest / 1000:06.3f}"


def highlight(text: str, spans: list[tuple[int, int, str]]) -> list[Segment]:
    """Split text at evidence spans (code-point offsets, clamped; overlaps keep the first)."""
    out: list[Segment] = []
    pos = 0
    for start, end, cat in sorted(spans):
        start, end = max(start, pos), min(end, len(text))
        if start >= end:
            continue
        if start > pos:
            out.append(Segment(text[pos:start]))
        out.append(Segment(text[start:end], cat))
        pos = end
    if pos < len(text):
        out.append(Segment(text[pos:]))
    return out


def _stamp(start_ms: int, end_ms: int) -> str:
    return f"{_timestamp(start_ms)}–{_timestamp(end_ms)}"


def transcript_lines(
    transcript: classifier_pb2.Transcript, evidence: list[Any]
) -> list[TranscriptLine]:
    """The transcript's segments in time order, each marked with the category of the first
    (strongest) flagged time range it overlaps."""
    ranges = [
        (ev.time_range.start_ms, ev.time_range.end_ms, _category(ev.category))
        for ev in evidence
        if ev.WhichOneof("location") == "time_range"
    ]
    lines: list[TranscriptLine] = []
    for seg in sorted(transcript.segments, key=lambda s: s.time_range.start_ms):
        start, end = seg.time_range.start_ms, seg.time_range.end_ms
        category = next((c for a, b, c in ranges if start < b and a < end), "")
        lines.append(TranscriptLine(_stamp(start, end), start, seg.text.strip(), category))
    return lines


def _reference(media: content_pb2.Media) -> str:
    if media.WhichOneof("source") == "uri":
        uri = media.uri
        scheme, _, rest = uri.partition("://")
        return f"{scheme}://…/{rest.rsplit('/', 1)[-1]}" if rest else uri
    return "inline (not kept by the review store)"


def present(
    item: content_pb2.ContentItem | None, decision: decision_pb2.ModerationDecision | None
) -> Shown:
    if item is None or decision is None:
        return Shown(True, [], [], [], "", [], "", "", "", [], [])
    by_part: dict[str, list[Any]] = {}
    transcripts: dict[str, classifier_pb2.Transcript] = {}
    for group in decision.evidence:
        for ev in group.evidence:
            by_part.setdefault(ev.part_id, []).append(ev)
        for tr in group.transcripts:
            transcripts[tr.part_id] = tr
    parts: list[ShownPart] = []
    for index, part in enumerate(item.parts):
        pid = part.part_id or str(index)
        evs = by_part.get(pid, [])
        if part.HasField("media"):
            m = part.media
            kind = (
                m.mime_type.split("/", 1)[0]
                if m.mime_type.startswith(("image/", "audio/"))
                else "media"
            )
            shown = ShownPart(
                pid,
                kind,
                mime_type=m.mime_type,
                sha256=m.sha256,
                reference=_reference(m),
                has_uri=m.WhichOneof("source") == "uri",
            )
        else:
            spans = [
                (ev.span.start, ev.span.end, _category(ev.category))
                for ev in evs
                if ev.WhichOneof("location") == "span"
            ]
            shown = ShownPart(pid, "text", segments=highlight(part.text, spans))
        for ev in evs:
            where = ev.WhichOneof("location")
            if ev.hash_bank:
                shown.hash_matches.append(f"{ev.hash_bank} ({_category(ev.category)})")
            if where == "time_range":
                stamp = _stamp(ev.time_range.start_ms, ev.time_range.end_ms)
                shown.flagged.append((stamp, ev.derived_text))
            elif where == "region":
                r = ev.region
                box = f"{r.width}×{r.height} at ({r.x}, {r.y})"
                shown.regions.append(f"{_category(ev.category)}: {box}")
                if ev.derived_text:
                    shown.ocr.append(ev.derived_text)
            elif ev.derived_text and shown.kind != "text":
                shown.ocr.append(ev.derived_text)
        if pid in transcripts:
            tr = transcripts[pid]
            shown.transcript = transcript_lines(tr, evs)
            shown.language = tr.language
            shown.omitted_segments = tr.omitted_segments
            shown.guards = list(tr.guards)
        parts.append(shown)
    scores = sorted(
        ((_category(c.category), float(c.score), int(c.severity)) for c in decision.categories),
        key=lambda s: -s[1],
    )
    return Shown(
        expired=False,
        parts=parts,
        scores=scores,
        models=[f"{m.name} {m.version}" for m in decision.models],
        rule=decision.escalation.rule,
        reasons=list(decision.reasons),
        policy_version=decision.policy_version,
        action=ACTION_NAMES.get(decision.action, "unspecified"),
        decided_by=decision.decided_by,
        missing=[
            f"{MODALITY.get(m.modality, '?')}: {m.reason} → {m.fallback}"
            for m in decision.missing_signals
        ],
        consistency=[(c.name, float(c.value), c.detail) for c in decision.consistency],
    )
