"""Hash parsing and import formats (CSV, ThreatExchange/HMA signal files) and OCR text
assembly, by plain calls."""

from __future__ import annotations

import numpy as np
import pytest

from crossguard.vision.hashbank import parse_csv, parse_te
from crossguard.vision.hashing import HashKind, hash_kind, normalise_hash, to_packed
from crossguard.vision.ocr import OcrLine
from crossguard.vision.ocr_text import FrameText, frame_text

pytestmark = pytest.mark.unit

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PHASH = "d1c4b6a8f0e1c2b3"


def test_kinds_from_length_and_normalisation() -> None:
    assert hash_kind(PDQ) == HashKind.PDQ
    assert hash_kind(PHASH) == HashKind.PHASH
    assert normalise_hash("  " + PDQ.upper() + "\n") == (HashKind.PDQ, PDQ)
    with pytest.raises(ValueError, match="64"):
        hash_kind("abc")
    with pytest.raises(ValueError, match="hexadecimal"):
        normalise_hash("z" * 64)
    with pytest.raises(ValueError, match="not a phash"):
        normalise_hash(PDQ, HashKind.PHASH)
    packed = to_packed([PDQ, PDQ], HashKind.PDQ)
    assert packed.shape == (2, 32)
    assert bytes(packed[0]).hex() == PDQ


def test_csv_import_reads_columns_and_reports_bad_lines() -> None:
    text = f"hash,entry_id,note\n{PDQ},case-1,first\n{PHASH},case-2,\nnothex,case-3,bad\n,,\n"
    report = parse_csv(text, "bank-a")
    assert [(e.kind, e.hash, e.entry_id, e.note) for e in report.entries] == [
        (HashKind.PDQ, PDQ, "case-1", "first"),
        (HashKind.PHASH, PHASH, "case-2", ""),
    ]
    assert len(report.skipped) == 1 and report.skipped[0].startswith("line 4")
    with pytest.raises(Exception, match="'hash' column"):
        parse_csv("sha,id\n1,2\n", "bank-a")


def test_threatexchange_signal_file_import() -> None:
    text = f"# exported\npdq {PDQ}\nvideo_md5 d41d8cd98f00b204e9800998ecf8427e\n\npdq 1234\n"
    report = parse_te(text, "bank-te")
    assert [(e.bank, e.kind, e.hash) for e in report.entries] == [("bank-te", HashKind.PDQ, PDQ)]
    assert any("video_md5" in s for s in report.skipped)
    assert any("line 5" in s for s in report.skipped)
    bare = parse_te(f"{PDQ}\n", "bank-te", default_type="pdq")
    assert [e.hash for e in bare.entries] == [PDQ]


def test_frame_text_joins_lines_and_maps_spans_back() -> None:
    lines = [
        OcrLine("I will find you", 0.99, 10, 10, 200, 30),
        OcrLine("   ", 0.9, 0, 0, 1, 1),
        OcrLine("and kill you", 0.98, 10, 60, 180, 30),
        OcrLine("x" * 50, 0.9, 10, 100, 300, 30),
    ]
    ft = frame_text(lines, max_chars=40)
    assert ft.text == "I will find you\nand kill you"
    assert ft.offsets == [(0, 15), (16, 28)]
    assert ft.lines_in(16, 20) == [2]  # OCR line indices: the blank line 1 is left out
    assert ft.lines_in(10, 20) == [0, 2]


def test_a_frame_with_a_stray_glyph_is_not_scored() -> None:
    def text(t: str) -> FrameText:
        return frame_text([OcrLine(t, 0.9, 0, 0, 10, 10)], max_chars=100)

    assert not text("G").scorable(3)  # what OCR made of a cat's fur in the benign set
    assert not text("- ; G !").scorable(3)
    assert text("kys").scorable(3) and text("G").scorable(0) and text("G").scorable(1)
    assert not frame_text([], max_chars=100).scorable(0)  # nothing to score, whatever the cut


def test_respace_restores_word_gaps_from_character_boxes() -> None:
    from crossguard.vision.ocr import respace

    def boxes(spans: list[tuple[int, int]]) -> list[list[list[float]]]:
        return [[[x0, 0], [x1, 0], [x1, 10], [x0, 10]] for x0, x1 in spans]

    # "IWILLFIND": a 13 px gap after I and after the second L, characters ~16 px wide.
    spans = [
        (14, 30),
        (43, 60),
        (63, 79),
        (79, 94),
        (94, 111),
        (124, 140),
        (140, 155),
        (155, 171),
        (171, 187),
    ]
    assert respace("IWILLFIND", boxes(spans)) == "I WILL FIND"
    assert respace("I WILL", boxes(spans[:6])) == "I WILL"  # has spaces: unchanged
    assert respace("IWILLFIND", boxes(spans[:3])) == "IWILLFIND"  # boxes do not match


def _ctc(frames: list[tuple[int, float]], classes: int = 5) -> np.ndarray:
    """[1, frames, classes] probabilities: each frame's top class and its space probability
    (class 4 is the space; class 0 the CTC blank)."""
    out = np.zeros((1, len(frames), classes), dtype=np.float32)
    for t, (top, space) in enumerate(frames):
        out[0, t, 4] = space
        out[0, t, top] = max(out[0, t, top], 1.0 - space)
    return out


def test_restore_spaces_turns_the_most_space_like_blank_of_a_word_gap_into_a_space() -> None:
    from crossguard.vision.ocr import restore_spaces

    # a _ _ b | b _(0.02) _(0.2) _(0.05) c | c _(0.001) d, then trailing blanks with space odds.
    frames = [(1, 0.0), (0, 0.0), (0, 0.0), (2, 0.0), (0, 0.02), (0, 0.2), (0, 0.05), (3, 0.0)]
    frames += [(0, 0.001), (1, 0.0), (0, 0.3), (0, 0.3)]
    out = restore_spaces(_ctc(frames), space=4, threshold=0.01)
    assert out[0].argmax(axis=1).tolist() == [1, 0, 0, 2, 0, 4, 0, 3, 0, 1, 0, 0]
    # Nothing reaches a high threshold: unchanged.
    assert np.array_equal(restore_spaces(_ctc(frames), space=4, threshold=0.5), _ctc(frames))
    # A gap already read as a space gets no second one.
    spaced = _ctc([(1, 0.0), (4, 0.9), (0, 0.3), (2, 0.0)])
    assert restore_spaces(spaced, space=4).argmax(axis=2).tolist() == [[1, 4, 0, 2]]


def test_a_turned_reading_replaces_the_upright_one_only_when_more_confident() -> None:
    from crossguard.vision.ocr import better_reading

    box = [[0, 0], [10, 0], [10, 5], [0, 5]]
    upright = [box, "K pue Aibue", 0.75, [box]]
    assert better_reading(upright, "and angry I", 0.98) == [box, "and angry I", 0.98]
    assert better_reading(upright, "ɐ", 0.5) is upright
    assert better_reading(upright, "  ", 0.99) is upright
