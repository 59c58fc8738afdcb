"""Unit tests of the text classifier's own logic (validation, sanitising, chunking, pooling,
evidence budget) with a small deterministic keyword model implementing TextModel's interface.
The real model is exercised by the servicer/server tests."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import pytest

from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import InvalidInput, LimitExceeded, NotReady
from crossguard.core.results import ClassifierResult
from crossguard.core.serving.classifier import BatchItem
from crossguard.core.taxonomy import Category, severity
from crossguard.text.service import TextClassifier
from crossguard.text.settings import TextServiceSettings
from crossguard.text.textprep import chunk, plan_chunks, sanitize, sentences, units

if TYPE_CHECKING:
    from conftest import MetricsCapture

pytestmark = pytest.mark.unit

KEYWORDS: dict[str, tuple[Category, float]] = {
    "kill": (Category.VIOLENCE, 0.9),
    "idiot": (Category.HARASSMENT, 0.8),
    "damn": (Category.PROFANITY, 0.7),
}


class KeywordModel:
    """Deterministic stand-in: a category scores high when its keyword occurs in the text."""

    name = "keyword"
    version = "1"
    categories = (Category.VIOLENCE, Category.HARASSMENT, Category.PROFANITY)

    def __init__(self) -> None:
        self.thresholds = {c: 0.5 for c in self.categories}
        self.model_infos = [("keyword", "1")]
        self.loaded = False
        self.closed = False
        self.seen: list[str] = []
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def load(self) -> None:
        self.loaded = True

    def ready(self) -> bool:
        return self.loaded

    def predict(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        with self._lock:
            self.seen.extend(texts)
            self.batches.append(len(texts))
        out = []
        for text in texts:
            probs = {c: 0.01 for c in self.categories}
            lowered = text.lower()
            for word, (cat, value) in KEYWORDS.items():
                if word in lowered:
                    probs[cat] = value
            out.append(probs)
        return out

    def close(self) -> None:
        self.closed = True


ClassifierFactory = Callable[..., TextClassifier]


@pytest.fixture
def make_classifier() -> ClassifierFactory:
    """Factory: a started-on-demand classifier over a fresh KeywordModel with overrides."""

    def make(**overrides: object) -> TextClassifier:
        settings = TextServiceSettings.model_validate(overrides)
        return TextClassifier(KeywordModel(), settings)

    return make


async def started(make: ClassifierFactory, **overrides: object) -> TextClassifier:
    classifier = make(**overrides)
    await classifier.start()
    return classifier


# --- textprep ------------------------------------------------------------------------------


def test_sanitize_identity_for_plain_text() -> None:
    s = sanitize("Hello world, ça va? 😀 你好")
    assert s.text == "Hello world, ça va? 😀 你好"
    assert not s.changed
    assert s.original_span(0, 5) == (0, 5)


def test_sanitize_strips_controls_and_format_chars_with_offset_map() -> None:
    original = "k\u200bi\x00ll\u202e you\x1b[31m now"
    s = sanitize(original)
    assert s.text == "kill you[31m now"
    start = s.text.index("you")
    o_start, o_end = s.original_span(start, start + 3)
    assert original[o_start:o_end] == "you"
    # "kill" spans the removed characters in the original.
    assert original[slice(*s.original_span(0, 4))] == "k\u200bi\x00ll"


def test_sanitize_nfkc_maps_back_to_original_code_points() -> None:
    original = "ｋｉｌｌ ﬁne e\u0301"
    s = sanitize(original)
    assert s.text == "kill fine é"
    start = s.text.index("fine")
    assert original[slice(*s.original_span(start, start + 4))] == "ﬁne"
    assert original[slice(*s.original_span(len(s.text) - 1, len(s.text)))] == "e\u0301"


def test_sanitize_never_crashes_on_surrogates_and_odd_input() -> None:
    for text in ["\ud800abc", "\x00" * 10, "", "\n\t\r", "\U000e0041tag", "a" * 10_000]:
        s = sanitize(text)
        assert "\x00" not in s.text
        assert len(s.starts or []) in (0, len(s.text))


def test_units_split_words_cjk_and_long_runs() -> None:
    text = "hello 你好 " + "x" * 70
    spans = units(text)
    words = [text[a:b] for a, b in spans]
    assert words[:3] == ["hello", "你", "好"]
    assert "".join(words[3:]) == "x" * 70
    assert all(len(w) <= 32 for w in words)


def test_chunk_covers_all_units_with_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(300))
    spans = units(text)
    chunks = chunk(spans, max_units=100, overlap_units=20, max_chars=10_000)
    assert chunks[0].first == 0 and chunks[-1].last == 300
    for a, b in itertools.pairwise(chunks):
        assert b.first == a.last - 20
    assert all(c.last - c.first <= 100 for c in chunks)


def test_chunk_respects_char_cap_without_quadratic_blowup() -> None:
    text = " ".join(["y" * 32] * 1000)
    spans = units(text)
    chunks = chunk(spans, max_units=128, overlap_units=32, max_chars=768)
    assert all(c.end - c.start <= 768 for c in chunks)
    assert len(chunks) < 70  # ~23 units per chunk, proportional overlap


def test_sentences_split_on_punctuation_and_line_breaks() -> None:
    text = "Hello there. How are you?\nfine thanks 这是句子。好的"
    spans = units(text)
    got = [text[spans[a][0] : spans[b - 1][1]] for a, b in sentences(text, spans)]
    assert got == ["Hello there.", "How are you?", "fine thanks 这是句子。", "好的"]


PLAN = {"whole_units": 20, "window_units": 8, "overlap_units": 2, "min_units": 3, "max_chars": 500}


def test_plan_short_text_is_one_piece() -> None:
    text = "One. Two. Three four five."
    spans = units(text)
    (only,) = plan_chunks(text, spans, **PLAN)
    assert text[only.start : only.end] == text


def test_plan_long_text_by_sentence_merging_small_and_splitting_long() -> None:
    text = (
        "The calm weather report for today. Ok. "
        + "one two three four five six seven eight nine ten eleven twelve. "
        + "I will find you and kill you. Bye."
    )
    spans = units(text)
    pieces = [text[c.start : c.end] for c in plan_chunks(text, spans, **PLAN)]
    assert pieces[0] == "The calm weather report for today. Ok."  # "Ok." merged
    assert "I will find you and kill you. Bye." in pieces  # "Bye." merged
    long_windows = [p for p in pieces if "seven" in p]
    assert all(len(p.split()) <= 8 for p in long_windows) and len(long_windows) >= 2


# --- classify ------------------------------------------------------------------------------


async def test_classify_scores_and_severity(make_classifier: ClassifierFactory) -> None:
    clf = await started(make_classifier)
    result = await clf.classify("c1", [("body", "I will kill you")])
    assert result.score_of(Category.VIOLENCE) == pytest.approx(0.9)
    assert result.score_of(Category.HARASSMENT) == pytest.approx(0.01)
    top = result.scores[0]
    assert top.category == Category.VIOLENCE and top.severity == severity(0.9) == 3
    assert result.models == [("keyword", "1")]
    assert {t.stage for t in result.timings} >= {"prepare", "model", "total"}
    await clf.close()


async def test_score_is_max_over_parts_and_chunks(make_classifier: ClassifierFactory) -> None:
    clf = await started(
        make_classifier, whole_text_units=16, window_units=16, window_overlap_units=4
    )
    long_text = " ".join(["calm"] * 200 + ["kill"] + ["calm"] * 200)
    result = await clf.classify("c2", [("a", "what an idiot"), ("b", long_text), ("c", "nice")])
    assert result.score_of(Category.VIOLENCE) == pytest.approx(0.9)
    assert result.score_of(Category.HARASSMENT) == pytest.approx(0.8)
    model = clf.model
    assert isinstance(model, KeywordModel)
    assert len([t for t in model.seen if t.startswith("calm")]) > 20  # chunked
    violence = [e for e in result.evidence if e.category == Category.VIOLENCE]
    assert violence and violence[0].part_id == "b"
    assert long_text[violence[0].start : violence[0].end] == violence[0].text
    assert "kill" in violence[0].text
    await clf.close()


async def test_evidence_spans_in_original_code_points(make_classifier: ClassifierFactory) -> None:
    clf = await started(make_classifier)
    text = "😀😀 héllo ｋｉｌｌ now, 你好 idiot"
    result = await clf.classify("c3", [("t", text)], max_evidence=10)
    by_cat = {e.category: e for e in result.evidence}
    assert set(by_cat) == {Category.VIOLENCE, Category.HARASSMENT}
    v = by_cat[Category.VIOLENCE]
    assert text[v.start : v.end] == v.text == "ｋｉｌｌ"
    assert v.weight == pytest.approx(0.89)
    h = by_cat[Category.HARASSMENT]
    assert text[h.start : h.end] == "idiot"
    await clf.close()


@pytest.mark.parametrize("budget", [1, 6, 24])
async def test_evidence_budget_bounds_forward_passes(
    make_classifier: ClassifierFactory, budget: int
) -> None:
    parts = [(f"p{i}", " ".join(["word"] * 150 + ["kill", "idiot", "damn"])) for i in range(3)]
    baseline = await started(make_classifier, evidence_passes=0, whole_text_units=64)
    await baseline.classify("c4", parts)
    n_chunks = len(baseline.model.seen)  # type: ignore[attr-defined]
    await baseline.close()

    clf = await started(make_classifier, evidence_passes=budget, whole_text_units=64)
    result = await clf.classify("c4", parts)
    extra = len(clf.model.seen) - n_chunks  # type: ignore[attr-defined]
    assert 0 < extra <= budget
    assert len(result.evidence) <= clf.settings.default_evidence
    if budget >= 6:
        assert {e.category for e in result.evidence} == {
            Category.VIOLENCE,
            Category.HARASSMENT,
            Category.PROFANITY,
        }
    await clf.close()


async def test_no_evidence_below_threshold_or_when_disabled(
    make_classifier: ClassifierFactory,
) -> None:
    clf = await started(make_classifier)
    result = await clf.classify("c5", [("t", "have a lovely day")])
    assert result.evidence == []
    assert all(s.score < 0.5 for s in result.scores)
    await clf.close()
    clf = await started(make_classifier, evidence_passes=0)
    result = await clf.classify("c6", [("t", "kill")])
    assert result.evidence == []
    assert len(clf.model.seen) == 1  # type: ignore[attr-defined]
    await clf.close()


async def test_max_evidence_caps_items(make_classifier: ClassifierFactory) -> None:
    clf = await started(make_classifier, max_evidence=2)
    text = "kill idiot damn kill idiot damn"
    result = await clf.classify("c7", [("t", text)], max_evidence=50)
    assert len(result.evidence) == 2
    # Round-robin: the two most severe categories each get their best span first.
    assert [e.category for e in result.evidence] == [Category.VIOLENCE, Category.HARASSMENT]
    await clf.close()


@pytest.mark.parametrize(
    ("parts", "match", "error"),
    [
        ([], "no text parts", InvalidInput),
        ([("a", "")], "empty", InvalidInput),
        ([("a", " \n\t\x00\u200b ")], "empty", InvalidInput),
        ([("a", "x" * 20_001)], r"20001 characters.*limit is 20000", LimitExceeded),
        ([(str(i), "x") for i in range(65)], r"65 text parts.*limit is 64", LimitExceeded),
        ([("a", "x"), ("a", "y")], "duplicate part_id 'a'", InvalidInput),
        ([(str(i), "x" * 20_000) for i in range(6)], r"120000 characters.*100000", LimitExceeded),
    ],
)
async def test_invalid_requests_name_the_limit(
    make_classifier: ClassifierFactory,
    parts: list[tuple[str, str]],
    match: str,
    error: type[Exception],
) -> None:
    clf = await started(make_classifier)
    with pytest.raises(error, match=match):
        await clf.classify("bad", parts)
    await clf.close()


async def test_request_bytes_limit(make_classifier: ClassifierFactory) -> None:
    clf = await started(make_classifier, max_request_bytes=1000)
    with pytest.raises(LimitExceeded, match=r"1200 bytes of UTF-8.*limit is 1000 bytes"):
        await clf.classify("b", [("a", "€" * 400)])
    await clf.close()


async def test_unicode_emoji_mixed_scripts_accepted(make_classifier: ClassifierFactory) -> None:
    clf = await started(make_classifier)
    texts = [
        "Привет, как дела? 🌍",
        "这是一个测试句子。" * 300,
        "مرحبا بالعالم",
        "Mixed: hello мир 世界 🔥 e\u0301",
        "👨‍👩‍👧‍👦" * 100,
        "\x00\x01 control \x7f chars \u202e reversed",
    ]
    result = await clf.classify("u", [(str(i), t) for i, t in enumerate(texts)])
    assert all(0.0 <= s.score <= 1.0 for s in result.scores)
    await clf.close()


async def test_not_ready_before_start_and_close_closes_model(
    make_classifier: ClassifierFactory,
) -> None:
    clf = make_classifier()
    with pytest.raises(NotReady):
        await clf.classify("x", [("a", "hi")])
    await clf.start()
    assert clf.ready()
    await clf.close()
    assert clf.model.closed  # type: ignore[attr-defined]
    assert not clf.ready()


async def test_concurrent_requests_are_batched(make_classifier: ClassifierFactory) -> None:
    import asyncio

    clf = await started(make_classifier, batch_max_delay_ms=20.0, batch_max=64)
    results = await asyncio.gather(
        *(clf.classify(f"c{i}", [("t", f"text number {i}")]) for i in range(40))
    )
    assert len(results) == 40
    assert max(clf.model.batches) > 1  # type: ignore[attr-defined]
    await clf.close()


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSGUARD_TEXT_MAX_PART_CHARS", "123")
    monkeypatch.setenv("CROSSGUARD_TEXT_BATCH_MAX", "7")
    s = TextServiceSettings()
    assert s.max_part_chars == 123 and s.batch_max == 7
    with pytest.raises(ValueError, match="window_overlap_units"):
        TextServiceSettings(window_units=10, window_overlap_units=10)


def test_default_intra_op_threads_share_the_cpus_among_workers() -> None:
    from crossguard.core.serving.server import default_intra_op_threads

    assert default_intra_op_threads(1, cpus=2) == 2
    assert default_intra_op_threads(2, cpus=2) == 1
    assert default_intra_op_threads(3, cpus=2) == 1
    assert default_intra_op_threads(1, cpus=16) == 16
    assert default_intra_op_threads(2, cpus=16) == 8


async def test_evidence_is_best_effort_under_back_pressure(
    make_classifier: ClassifierFactory,
) -> None:
    # A queue of 3: the request's own chunk fits, its 12 occlusion variants do not.
    clf = await started(make_classifier, queue_max=3)
    result = await clf.classify("c", [("t", "one two three four kill five six seven")])
    assert result.score_of(Category.VIOLENCE) == pytest.approx(0.9)
    assert result.evidence == []
    await clf.close()


# --- metrics ---------------------------------------------------------------------------------


class GatedModel(KeywordModel):
    """KeywordModel whose predict waits until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def predict(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        self.entered.set()
        self.gate.wait(timeout=30)
        return super().predict(texts)


async def test_requests_and_model_calls_are_measured(
    metrics_capture: Callable[[], MetricsCapture],
) -> None:
    capture = metrics_capture()
    model = GatedModel()
    classifier = TextClassifier(
        model,
        TextServiceSettings(evidence_passes=0),
        metrics=ClassifierMetrics("text", capture.meter()),
    )
    await classifier.start()
    try:
        # One request held in the model call, two more queued behind it, one cancelled there.
        first = asyncio.ensure_future(classifier.classify("a", [("t", "you idiot")]))
        await asyncio.to_thread(model.entered.wait, 10)
        queued = [
            asyncio.ensure_future(classifier.classify(c, [("t", "hello")])) for c in ("b", "c")
        ]
        gone = asyncio.ensure_future(classifier.classify("d", [("t", "bye")]))
        await asyncio.sleep(0.01)
        depth = capture.points()["crossguard.classifier.queue.depth"]
        assert depth == [({"modality": "text"}, 3)]
        gone.cancel()
        model.gate.set()
        await asyncio.gather(first, *queued)
        with pytest.raises(asyncio.CancelledError):
            await gone
        with pytest.raises(InvalidInput):
            await classifier.classify("e", [("t", "   ")])
    finally:
        model.gate.set()
        await classifier.close()

    got = capture.points()
    outcomes = {a["outcome"]: n for a, n in got["crossguard.classifier.duration"]}
    assert outcomes == {"ok": 3, "cancelled": 1, "invalid": 1}
    # Model calls as the model saw them (the cancelled text never reached it).
    assert got["crossguard.classifier.batch.size"] == [({"modality": "text"}, len(model.batches))]
    assert got["crossguard.classifier.batch.size.sum"] == [({"modality": "text"}, 3)]
    assert "crossguard.classifier.queue.depth" not in got  # closed: its queue is not watched


# --- batches and evidence on demand ----------------------------------------------------------


async def test_a_batch_scores_every_chunk_at_once_and_keeps_errors_per_item(
    make_classifier: ClassifierFactory,
) -> None:
    clf = await started(make_classifier, max_part_chars=100, max_total_chars=100)
    outcomes = await clf.classify_batch(
        [
            BatchItem("a", [("t", "have a lovely day")]),
            BatchItem("b", [("t", " \x00 ")]),
            BatchItem("c", [("t", "x" * 101)]),
            BatchItem("d", [("t", "you idiot")]),
        ]
    )
    assert isinstance(outcomes[1], InvalidInput) and isinstance(outcomes[2], LimitExceeded)
    good = [o for o in outcomes if isinstance(o, ClassifierResult)]
    assert [max(s.score for s in r.scores) for r in good] == [0.01, 0.8]
    # The two good items' texts went to the model together.
    assert clf.model.batches[0] == 2  # type: ignore[attr-defined]
    await clf.close()


async def test_evidence_only_for_items_that_need_it(make_classifier: ClassifierFactory) -> None:
    clf = await started(make_classifier)
    calm = [BatchItem(f"calm{k}", [("t", "have a lovely day, my friend")]) for k in range(3)]
    outcomes = await clf.classify_batch([*calm, BatchItem("bad", [("t", "I will kill you")])])
    results = [o for o in outcomes if isinstance(o, ClassifierResult)]
    assert [bool(r.evidence) for r in results] == [False, False, False, True]
    seen = clf.model.seen  # type: ignore[attr-defined]
    assert seen.count("have a lovely day, my friend") == 3  # calm items: one pass each
    assert len(seen) > 4  # the flagged item's occluded variants

    # A caller that asks (max_evidence > 0) gets evidence work whatever the scores.
    seen.clear()
    (asked,) = await clf.classify_batch([BatchItem("q", [("t", "lovely day")], max_evidence=3)])
    assert isinstance(asked, ClassifierResult) and len(seen) > 1
    await clf.close()


async def test_evidence_threshold_below_the_model_threshold(
    make_classifier: ClassifierFactory,
) -> None:
    """An item scoring between the evidence threshold and its category's threshold (one the
    policy may escalate) gets evidence; one below both does not."""
    clf = make_classifier(evidence_threshold=0.85)
    clf.model.thresholds = dict.fromkeys(KeywordModel.categories, 0.95)  # type: ignore[attr-defined]
    await clf.start()
    kill = await clf.classify("k", [("t", "I will kill you")])  # violence 0.9
    idiot = await clf.classify("i", [("t", "you are an idiot")])  # harassment 0.8
    assert {e.category for e in kill.evidence} == {Category.VIOLENCE}
    assert idiot.evidence == []
    await clf.close()
