"""`crossguard eval audio`: the audio path measured on speech synthesised from labeled texts.

Texts (eval_sample): VALIDATION texts only (crossguard.models.data.split_of; nothing here
chooses a threshold or a model), at most `max_chars` characters each (long posts would be
minutes of speech), stratified: every OpenAI moderation sample that fits (its 14 positives and
as many negatives), then Davidson validation tweets (hate speech as positives, "neither" as
negatives) until there are `positives` positives, with as many negatives; each stratum in
sha256 order, the sample in sha256 order. Each text is spoken by a voice (flite with any of its
voices, espeak-ng) and goes through the audio model (decode → VAD → Whisper → text models),
exactly as the service runs it. Reported per voice:

- WER of the transcript against the text (both through Whisper's English normaliser; jiwer),
  over the labeled texts and over CLEAN_SENTENCES;
- "any category" AUPRC of the audio path's scores against the same texts scored directly by
  the same text model, on the same labels (OpenAI: any annotated category; Davidson: hate),
  pooled and per source;
- real-time factor (analysis seconds / audio seconds) on this machine;
and, on non-speech sounds made with sox (noise, tones, sweeps, chords, plucked notes), how many
clips were transcribed at all and how many were flagged.

Honesty and size: every text's scores and WER counts are kept (JSON Lines under the cache
directory); the AUPRC difference comes with a paired bootstrap 95 % interval; the sample is
split by a salted hash of the text into a "choose" part, where options of the audio path are
compared (`--split choose --audio-setting NAME=VALUE`), and a "report" part, where the chosen
one is reported; WER is broken down by what the written text holds that no synthesiser says
as written (audio_eval_stats) and also computed against the reference with its symbols as
flite says them. Speech and transcripts are cached (audio_eval_cache), so reruns cost only the
text models.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from crossguard.audio.model import VAD_ENTRY
from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.audio_eval_cache import EvalCache, Heard, default_cache_dir, fingerprint
from crossguard.models.audio_eval_stats import (
    SPLITS,
    PairedAuprc,
    RunComparison,
    WordErrors,
    paired_auprc,
    split_of_text,
    text_features,
    verbalise_symbols,
    wer_groups,
    word_errors,
)
from crossguard.models.data import Example, default_data_dir, load_davidson, load_openai, select
from crossguard.models.speech_synth import NON_SPEECH, espeak_wav, flite_wav, sox_sound

# flite's voices as Debian ships them (`flite -lv`, less awb_time, which says only the time):
# kal 8 kHz diphone, kal16 16 kHz diphone, awb, rms and slt 16 kHz clustergen.
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
# The eval's flite voice: the one Whisper base transcribed best on CLEAN_SENTENCES (1.7 % WER;
# docs/audio.md, "Voices").
DEFAULT_FLITE_VOICE = "rms"
# `--voice best`: the WER-only voice with the lowest WER on CLEAN_SENTENCES.
BEST = "best"


def speaker(voice: str) -> Callable[[str], bytes]:
    """The synthesiser named `voice`: "flite" (DEFAULT_FLITE_VOICE), "flite:<voice>" or
    "espeak-ng"."""
    if voice == "espeak-ng":
        return espeak_wav
    name, _, flite_voice = voice.partition(":")
    if name == "flite" and (flite_voice or DEFAULT_FLITE_VOICE) in FLITE_VOICES:
        chosen = flite_voice or DEFAULT_FLITE_VOICE
        return lambda text: flite_wav(text, voice=chosen)
    raise ModelError(
        f"unknown voice {voice!r}: espeak-ng, flite or flite:<voice> with one of {FLITE_VOICES}"
    )


def voice_label(voice: str) -> str:
    return f"flite:{DEFAULT_FLITE_VOICE}" if voice == "flite" else voice


# A control for WER: ordinary sentences a synthesiser can say (the labeled texts hold user
# names, URLs, slang and misspellings that it cannot). Also the speech of `crossguard bench
# audio`.
CLEAN_SENTENCES = (
    "Good morning everyone, thanks for joining the call today.",
    "The quarterly numbers look better than we expected in the spring.",
    "We moved the release to next Thursday so the testers have more time.",
    "If you have questions about the new schedule, please send them by email.",
    "The weather was lovely for the picnic, and the children played football.",
    "Remember to water the plants while I am away on holiday.",
    "Our book club is reading a long novel about a family of sailors.",
    "The train was late again, so I walked the last mile home.",
    "I will find you and kill you if you ever come back here.",
    "You are a worthless idiot and everybody hates you.",
)


def normalise(text: str) -> str:
    """Whisper's English normaliser (transformers' copy: numbers, contractions, punctuation,
    case), so WER counts words, not spellings of the same words."""
    english = importlib.import_module("transformers.models.whisper.english_normalizer")
    return " ".join(str(english.EnglishTextNormalizer({})(text)).split())


@dataclass(frozen=True)
class TextResult:
    """One spoken text: its label and split, the text model's score on the typed text (as
    written, and after the WER normaliser), the audio path's score, and the WER counts."""

    key: str  # sha256 of the text
    source: str  # "openai" or "davidson"
    label: int
    split: str  # "choose" or "report" (audio_eval_stats.split_of_text)
    p_text: float
    p_text_normalised: float
    p_audio: float
    flagged_text: bool
    flagged_audio: bool
    reference: str  # normalised
    heard: str  # normalised
    errors: int  # substitutions + deletions + insertions
    ref_words: int
    # The same against the reference with its symbols as flite says them (verbalise_symbols).
    spoken_errors: int
    spoken_ref_words: int
    features: tuple[str, ...]  # audio_eval_stats.text_features
    seconds: float
    analysis_seconds: float
    asr_seconds: float


@dataclass(frozen=True)
class VoiceReport:
    voice: str
    rows: list[TextResult]
    # WER on CLEAN_SENTENCES spoken by the same voice.
    clean_wer: float
    # False: measured for WER only, on the first texts of the sample (no AUPRC).
    full: bool
    word_errors: WordErrors | None = None

    @property
    def wer(self) -> float:
        return self.wer_of()

    def wer_of(self, split: str | None = None, *, spoken: bool = False) -> float:
        """Corpus WER of a part, against the written (or symbols-spoken) reference."""
        rows = [r for r in self.rows if split is None or r.split == split]
        words = sum(r.spoken_ref_words if spoken else r.ref_words for r in rows)
        errors = sum(r.spoken_errors if spoken else r.errors for r in rows)
        return errors / words if words else math.nan

    @property
    def median_wer(self) -> float:
        per = [r.errors / r.ref_words for r in self.rows if r.ref_words]
        return float(np.median(per)) if per else math.nan

    @property
    def rtf(self) -> float:
        audio = sum(r.seconds for r in self.rows)
        return sum(r.analysis_seconds for r in self.rows) / audio if audio else math.nan

    @property
    def asr_rtf(self) -> float:
        audio = sum(r.seconds for r in self.rows)
        return sum(r.asr_seconds for r in self.rows) / audio if audio else math.nan

    def auprc(
        self, split: str | None = None, source: str | None = None, *, normalised: bool = False
    ) -> PairedAuprc:
        """Audio path vs typed (as written, or `normalised`), paired bootstrap CI."""
        rows = [
            r
            for r in self.rows
            if (split is None or r.split == split) and (source is None or r.source == source)
        ]
        y = np.array([r.label for r in rows], dtype=np.int64)
        typed = [r.p_text_normalised if normalised else r.p_text for r in rows]
        return paired_auprc(y, np.array([r.p_audio for r in rows]), np.array(typed))


@dataclass
class AudioEvalReport:
    whisper: str
    voices: list[VoiceReport]
    non_speech: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # transcribed, flagged
    seconds: float = 0.0
    settings: dict[str, object] = field(default_factory=dict)  # --audio-setting overrides
    cache: str = ""
    results: list[str] = field(default_factory=list)  # per-text JSON Lines written

    @property
    def non_speech_transcribed(self) -> int:
        return sum(t for t, _ in self.non_speech.values())

    @property
    def non_speech_flagged(self) -> int:
        return sum(f for _, f in self.non_speech.values())


def _key(example: Example) -> str:
    return hashlib.sha256(example.text.encode()).hexdigest()


def eval_sample(
    data_dir: Path | None = None, positives: int = 40, max_chars: int = 300
) -> list[Example]:
    """The stratified validation sample described in the module docstring: OpenAI texts first
    (every positive that fits, as many negatives), Davidson hate / neither tweets to reach
    `positives`, balanced; the choice depends on nothing but the texts and their labels."""
    data = data_dir or default_data_dir()

    def fits(e: Example) -> bool:
        return bool(e.text.strip()) and len(e.text.strip()) <= max_chars

    openai = sorted((e for e in select(load_openai(data), "validation") if fits(e)), key=_key)
    pos = [e for e in openai if e.any_positive][:positives]
    neg = [e for e in openai if not e.any_positive][: len(pos)]
    more = positives - len(pos)
    if more > 0:
        tweets = sorted((e for e in select(load_davidson(data), "validation") if fits(e)), key=_key)
        hate = [e for e in tweets if e.source == "davidson:0"][:more]
        pos += hate
        neg += [e for e in tweets if e.source == "davidson:2"][: len(hate)]
    return sorted(pos + neg, key=_key)


def _vocabulary(repository: ModelRepository) -> frozenset[str]:
    """The whole words of the text encoder's WordPiece vocabulary (bert-base-uncased's: about
    20 000 common English words): a word outside it is a misspelling, slang, a name or rare."""
    entry = repository.get("minilm-l6-encoder")
    vocab = json.loads((entry.path / "tokenizer.json").read_text())["model"]["vocab"]
    return frozenset(w for w in vocab if w.isalpha() and w.isascii())


def eval_audio(
    repository: ModelRepository,
    *,
    whisper_model: str = "whisper-base",
    voices: Sequence[str] = ("flite", "espeak-ng"),
    wer_voices: Sequence[str] = (),
    wer_texts: int = 12,
    positives: int = 40,
    max_chars: int = 300,
    split: str | None = None,
    audio_settings: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    data_dir: Path | None = None,
    threads: int = 0,
    non_speech: bool = True,
    progress: Callable[[str], None] | None = None,
) -> AudioEvalReport:
    """`split`: speak only the texts of that part ("choose" or "report"; None: all).
    `audio_settings`: AudioServiceSettings overrides (e.g. beam_size=5), for comparing
    options of the audio path on the choose part."""
    from crossguard.audio.model import AudioModel
    from crossguard.audio.settings import AudioServiceSettings
    from crossguard.text.model import TextModel

    for name in (*wer_voices, *voices):
        if name != BEST:
            speaker(name)  # an unknown voice fails before minutes of model loading
    if split is not None and split not in SPLITS:
        raise ModelError(f"unknown split {split!r}: one of {SPLITS}")
    jiwer = __import__("jiwer")
    t0 = time.perf_counter()
    overrides = dict(audio_settings or {})
    unknown = sorted(set(overrides) - set(AudioServiceSettings.model_fields))
    if unknown:
        raise ModelError(f"unknown audio settings {unknown}: see docs/configuration.md")
    settings = AudioServiceSettings(
        **{"whisper_model": whisper_model, "whisper_threads": threads, **overrides}  # type: ignore[arg-type]
    )
    model_settings = ModelSettings(model_repository=repository.root)
    text_model = TextModel(repository, model_settings)
    text_model.load()
    model = AudioModel(text_model, settings, model_settings, repository)
    model.load()
    thresholds = model.thresholds
    heads = [c for c in text_model.categories if c != Category.PROFANITY]
    hearing = [(n, v) for n, v in model.model_infos if n in (VAD_ENTRY, settings.whisper_model)]
    cache = EvalCache(
        cache_dir or default_cache_dir(), fingerprint(hearing, settings.model_dump(mode="json"))
    )
    vocabulary = _vocabulary(repository)
    sample = [
        e
        for e in eval_sample(data_dir, positives, max_chars)
        if split is None or split_of_text(e.text) == split
    ]
    typed = text_model.predict([e.text for e in sample])
    typed_normalised = text_model.predict([normalise(e.text) for e in sample])

    def any_score(scores: Mapping[Category, float]) -> float:
        return max(scores.get(c, 0.0) for c in heads)

    def flagged(scores: Mapping[Category, float]) -> bool:
        return any(scores.get(c, 0.0) >= thresholds[c] for c in heads)

    def hear(voice: str, text: str, speak: Callable[[str], bytes]) -> Heard:
        def listen() -> Heard:
            data = cache.speech(voice, text, speak)
            t = time.perf_counter()
            a = model.analyze(voice, data)
            return Heard(
                a.segments,
                a.language,
                a.seconds,
                a.speech_seconds,
                time.perf_counter() - t,
                a.timings.get("asr", 0.0) / 1000.0,
                a.flags,
            )

        return cache.heard(voice, text, listen)

    reports: list[VoiceReport] = []
    results: list[str] = []
    # WER-only voices first (clean sentences + the first `wer_texts` texts), so that `best`
    # among the full voices can be the lowest clean-sentence WER among them.
    plan = [(v, False) for v in wer_voices] + [(v, True) for v in voices]
    for voice, full in plan:
        if voice == BEST:
            measured = [r for r in reports if not r.full]
            if not measured:
                raise ModelError("--voice best needs WER-only voices (--wer-voice) to choose from")
            voice = min(measured, key=lambda r: (r.clean_wer, r.wer)).voice
        speak = speaker(voice)
        voice = voice_label(voice)
        chosen = sample if full else sample[:wer_texts]
        rows: list[TextResult] = []
        started = time.perf_counter()
        for i, example in enumerate(chosen):
            heard = hear(voice, example.text, speak)
            scores, _ = model.score_transcript(voice, heard.segments)
            reference = normalise(example.text)
            hypothesis = normalise(" ".join(s.text for s in heard.segments))
            said = normalise(verbalise_symbols(example.text))
            counts = (
                jiwer.process_words(reference, hypothesis)
                if reference
                else None  # nothing speakable: no WER
            )
            said_counts = jiwer.process_words(said, hypothesis) if said else None
            rows.append(
                TextResult(
                    key=_key(example),
                    source=example.source.split(":")[0],
                    label=int(example.any_positive),
                    split=split_of_text(example.text),
                    p_text=any_score(typed[i]),
                    p_text_normalised=any_score(typed_normalised[i]),
                    p_audio=any_score(scores),
                    flagged_text=flagged(typed[i]),
                    flagged_audio=flagged(scores),
                    reference=reference,
                    heard=hypothesis,
                    errors=(
                        counts.substitutions + counts.deletions + counts.insertions if counts else 0
                    ),
                    ref_words=len(reference.split()),
                    spoken_errors=(
                        said_counts.substitutions + said_counts.deletions + said_counts.insertions
                        if said_counts
                        else 0
                    ),
                    spoken_ref_words=len(said.split()),
                    features=text_features(example.text, vocabulary),
                    seconds=heard.seconds,
                    analysis_seconds=heard.analysis_seconds,
                    asr_seconds=heard.asr_seconds,
                )
            )
            if progress and ((i + 1) % 10 == 0 or i + 1 == len(chosen)):
                progress(
                    f"{voice}: {i + 1}/{len(chosen)} texts, "
                    f"{time.perf_counter() - started:.0f} s "
                    f"(cache: {cache.hits} heard before, {cache.misses} new)"
                )
        clean_hyps = [
            normalise(" ".join(s.text for s in hear(voice, text, speak).segments))
            for text in CLEAN_SENTENCES
        ]
        clean_wer = float(jiwer.wer([normalise(t) for t in CLEAN_SENTENCES], clean_hyps))
        pairs = [(r.reference, r.heard) for r in rows if r.reference]
        report = VoiceReport(voice, rows, clean_wer, full, word_errors(pairs, vocabulary, jiwer))
        reports.append(report)
        if full:
            out = cache.root / "results" / f"{voice.replace(':', '-')}-{cache.fingerprint}.jsonl"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(json.dumps(asdict(r)) + "\n" for r in rows))
            results.append(str(out))
    sounds: dict[str, tuple[bool, bool]] = {}
    for kind in NON_SPEECH if non_speech else ():
        analysis = model.analyze(kind, sox_sound(kind, seconds=5.0))
        hit = bool(analysis.evidence) or any(
            v >= thresholds.get(c, 0.5) for c, v in analysis.scores.items()
        )
        sounds[kind] = (bool(analysis.segments), hit)
    if progress and non_speech:
        progress(f"{len(NON_SPEECH)} non-speech clips done")
    whisper = next(v for n, v in model.model_infos if n == settings.whisper_model)
    model.close()
    return AudioEvalReport(
        f"{settings.whisper_model}/{whisper}",
        reports,
        sounds,
        time.perf_counter() - t0,
        settings=dict(overrides),
        cache=f"{cache.root} (transcripts: {cache.fingerprint})",
        results=results,
    )


def _auprc_line(label: str, a: PairedAuprc) -> str:
    return (
        f"{label:<30} {a.texts:>5} {a.positives:>4} {a.audio:>11.3f} {a.text:>10.3f} "
        f"{a.diff:>+6.3f}  [{a.low:+.3f}, {a.high:+.3f}]"
    )


def format_audio_eval(report: AudioEvalReport) -> str:
    settings = ", ".join(f"{k}={v}" for k, v in report.settings.items()) or "defaults"
    lines = [
        f"audio path with {report.whisper} (audio settings: {settings}); stratified validation "
        "sample; AUPRC = 'any category'",
        "WER (normalised text: Whisper's English normaliser on both sides): over the texts / "
        "median per text / on ten clean sentences (CLEAN_SENTENCES); a voice without AUPRC "
        "was measured for WER on the first texts of the sample only",
        "",
        f"{'voice':<12} {'texts':>5} {'pos':>4} {'WER':>6} {'median':>6} {'clean':>6} "
        f"{'flagged a/t':>11} {'RTF':>5} {'ASR RTF':>7}",
    ]
    for v in report.voices:
        flagged = f"{sum(r.flagged_audio for r in v.rows)}/{sum(r.flagged_text for r in v.rows)}"
        lines.append(
            f"{v.voice:<12} {len(v.rows):>5} {sum(r.label for r in v.rows):>4} {v.wer:>6.3f} "
            f"{v.median_wer:>6.3f} {v.clean_wer:>6.3f} {flagged:>11} {v.rtf:>5.3f} "
            f"{v.asr_rtf:>7.3f}"
        )
    for v in (v for v in report.voices if v.full):
        splits = sorted({r.split for r in v.rows})
        lines += [
            "",
            f"{v.voice}: WER against the written reference and against it with its symbols "
            "as flite says them (@ 'at', # 'hash', :// 'slash slash', / & *)",
            f"{'part':<12} {'texts':>5} {'written':>8} {'spoken':>8}",
        ]
        for split in (*splits, None) if len(splits) > 1 else (None,):
            n = sum(1 for r in v.rows if split is None or r.split == split)
            lines.append(
                f"{split or 'all':<12} {n:>5} {v.wer_of(split):>8.3f} "
                f"{v.wer_of(split, spoken=True):>8.3f}"
            )
        lines += [
            "",
            f"{v.voice}: AUPRC through the audio path vs the same texts typed; diff with the "
            "95 % interval of a paired bootstrap (2000 resamples of the texts)",
            f"{'part':<30} {'texts':>5} {'pos':>4} {'AUPRC audio':>11} {'AUPRC text':>10} "
            f"{'diff':>6}  95 % CI",
        ]
        sources = sorted({r.source for r in v.rows})
        for split in (*splits, None) if len(splits) > 1 else (None,):
            name = split or "all"
            lines.append(_auprc_line(name, v.auprc(split)))
            for source in sources:
                lines.append(_auprc_line(f"  {name} / {source}", v.auprc(split, source)))
            lines.append(
                _auprc_line(f"  {name}, typed normalised", v.auprc(split, normalised=True))
            )
        lines += [
            "",
            f"{v.voice}: WER by what the text holds (features of the written text; a text may "
            "have several; 'unknown words': a word outside the text encoder's vocabulary)",
            f"{'texts':<30} {'n':>5} {'words':>6} {'errors':>6} {'WER':>6} {'spoken':>6}",
        ]
        groups = wer_groups([(r.features, r.errors, r.ref_words) for r in v.rows])
        said = wer_groups([(r.features, r.spoken_errors, r.spoken_ref_words) for r in v.rows])
        for g, gs in zip(groups, said, strict=True):
            lines.append(
                f"{g.name:<30} {g.texts:>5} {g.words:>6} {g.errors:>6} {g.wer:>6.3f} {gs.wer:>6.3f}"
            )
        if v.word_errors is not None:
            w = v.word_errors
            lines.append(
                f"reference words lost (substituted or deleted): {w.errors_in_vocab} of "
                f"{w.ref_words - w.ref_oov} in the vocabulary, {w.errors_oov} of {w.ref_oov} "
                f"outside it; {w.insertions} words inserted"
            )
    if report.non_speech:
        n = len(report.non_speech)
        lines += [
            "",
            f"non-speech clips (sox, 5 s each): {report.non_speech_transcribed}/{n} transcribed, "
            f"{report.non_speech_flagged}/{n} flagged",
        ]
        for kind, (transcribed, hit) in report.non_speech.items():
            if transcribed or hit:
                lines.append(f"  {kind}: transcribed={transcribed} flagged={hit}")
    lines.append(f"cache: {report.cache}")
    lines += [f"per-text results: {path}" for path in report.results]
    lines.append(f"({report.seconds:.0f} s)")
    return "\n".join(lines)


def read_results(path: Path) -> list[dict[str, object]]:
    """The per-text JSON Lines `eval_audio` writes."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def format_comparison(base: Path, other: Path, c: RunComparison) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:+.1f}"

    a = c.auprc
    lines = [
        f"base:  {base}",
        f"other: {other}",
        f"texts in both: {a.texts} ({a.positives} positives)",
        f"{'':<28} {'base':>8} {'other':>8}",
        f"{'AUPRC audio path':<28} {a.text:>8.3f} {a.audio:>8.3f}",
        f"{'gap to typed (points)':<28} {pct(c.base_to_typed.diff):>8} "
        f"{pct(c.other_to_typed.diff):>8}",
        f"{'  95 % CI':<28} [{pct(c.base_to_typed.low)}, {pct(c.base_to_typed.high)}] "
        f"[{pct(c.other_to_typed.low)}, {pct(c.other_to_typed.high)}]",
        f"{'WER as written':<28} {c.base_wer:>8.3f} {c.other_wer:>8.3f}",
        f"{'WER symbols spoken':<28} {c.base_spoken_wer:>8.3f} {c.other_spoken_wer:>8.3f}",
        f"other - base AUPRC: {pct(a.diff)} points, paired bootstrap 95 % CI "
        f"[{pct(a.low)}, {pct(a.high)}]",
        "",
        "texts whose audio-path score moved most (label, base -> other, what each heard):",
    ]
    for b, o in c.moved:
        if b["p_audio"] == o["p_audio"]:
            break
        lines += [
            f"  {str(b['key'])[:12]} label={b['label']} {float(b['p_audio']):.3f} -> "  # type: ignore[arg-type]
            f"{float(o['p_audio']):.3f}",  # type: ignore[arg-type]
            f"    base:  {b['heard']}",
            f"    other: {o['heard']}",
        ]
    return "\n".join(lines)
