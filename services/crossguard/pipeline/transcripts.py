"""The audio transcripts a decision carries (and so its review task): every part's timed
transcript, capped in characters so that an hour of speech does not swell every decision record
on Kafka and in the review store.

Within the cap, segments that overlap a flagged time range come first (the reviewer must read
those), then the others in time order (the context); the kept segments stay in time order and
each part's copy counts the segments it left out."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from crossguard.core.proto_convert import transcript_to_proto
from crossguard.core.results import (
    AudioRange,
    AudioRangeEvidence,
    DerivedTextEvidence,
    Evidence,
    TimedText,
    Transcript,
)
from crossguard.v1 import classifier_pb2


def flagged_ranges(evidence: Sequence[Evidence]) -> dict[str, list[AudioRange]]:
    """The time ranges of an audio result's evidence, per part."""
    out: dict[str, list[AudioRange]] = defaultdict(list)
    for e in evidence:
        if isinstance(e, AudioRangeEvidence):
            out[e.part_id].append(e.time_range)
        elif isinstance(e, DerivedTextEvidence) and isinstance(e.location, AudioRange):
            out[e.part_id].append(e.location)
    return out


def _overlaps(seg: TimedText, ranges: Sequence[AudioRange]) -> bool:
    r = seg.time_range
    return any(r.start_ms < f.end_ms and f.start_ms < r.end_ms for f in ranges)


def capped_transcripts(
    transcripts: Sequence[Transcript], evidence: Sequence[Evidence], max_chars: int
) -> list[classifier_pb2.Transcript]:
    """The transcripts as protos, at most `max_chars` characters of segment text over all of
    them (0: none at all). A segment is kept whole or left out, never cut."""
    if max_chars <= 0:
        return []
    flagged = flagged_ranges(evidence)
    # (priority, part index, segment index): flagged segments first, then time order.
    order = sorted(
        (not _overlaps(seg, flagged.get(t.part_id, [])), p, s)
        for p, t in enumerate(transcripts)
        for s, seg in enumerate(t.segments)
    )
    budget = max_chars
    kept: set[tuple[int, int]] = set()
    for _, p, s in order:
        size = len(transcripts[p].segments[s].text)
        if size <= budget:
            kept.add((p, s))
            budget -= size
    out: list[classifier_pb2.Transcript] = []
    for p, t in enumerate(transcripts):
        segments = [seg for s, seg in enumerate(t.segments) if (p, s) in kept]
        msg = classifier_pb2.Transcript()
        transcript_to_proto(
            Transcript(
                t.part_id,
                t.language,
                t.language_probability,
                segments,
                list(t.guards),
                t.duration_ms,
                t.speech_ms,
            ),
            msg,
        )
        msg.omitted_segments = len(t.segments) - len(segments)
        out.append(msg)
    return out
