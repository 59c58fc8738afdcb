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
"""

from __future__ import annotations

import hashlib
import importlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.data import Example, default_data_dir, load_davidson, load_openai, select
from crossguard.models.evaluate import average_precision
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
class SourceAuprc:
    source: str
    texts: int
    positives: int
    auprc_audio: float
    auprc_text: float


@dataclass(frozen=True)
class VoiceReport:
    voice: str
    texts: int
    positives: int
    wer: float
    # Median of the per-text WERs: the typical text, less swayed by a few unspeakable ones
    # (URLs, user names, emoji).
    median_wer: float
    auprc_audio: float
    auprc_text: float
    audio_seconds: float
    analysis_seconds: float
    asr_seconds: float
    flagged_audio: int
    flagged_text: int
    # WER on CLEAN_SENTENCES spoken by the same voice.
    clean_wer: float = math.nan
    # AUPRC per data source (empty for a WER-only voice, whose AUPRC fields are NaN).
    by_source: tuple[SourceAuprc, ...] = ()

    @property
    def rtf(self) -> float:
        return self.analysis_seconds / self.audio_seconds if self.audio_seconds else math.nan


@dataclass
class AudioEvalReport:
    whisper: str
    voices: list[VoiceReport]
    non_speech: dict[str, tuple[bool, bool]] = field(default_factory=dict)  # transcribed, flagged
    seconds: float = 0.0

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


def eval_audio(
    repository: ModelRepository,
    *,
    whisper_model: str = "whisper-base",
    voices: Sequence[str] = ("flite", "espeak-ng"),
    wer_voices: Sequence[str] = (),
    wer_texts: int = 12,
    positives: int = 40,
    max_chars: int = 300,
    data_dir: Path | None = None,
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AudioEvalReport:
    from crossguard.audio.model import AudioModel
    from crossguard.audio.settings import AudioServiceSettings
    from crossguard.text.model import TextModel

    for name in (*wer_voices, *voices):
        if name != BEST:
            speaker(name)  # an unknown voice fails before minutes of model loading
    jiwer = __import__("jiwer")
    t0 = time.perf_counter()
    model_settings = ModelSettings(model_repository=repository.root)
    text_model = TextModel(repository, model_settings)
    text_model.load()
    model = AudioModel(
        text_model,
        AudioServiceSettings(whisper_model=whisper_model, whisper_threads=threads),
        model_settings,
        repository,
    )
    model.load()
    thresholds = model.thresholds
    heads = [c for c in text_model.categories if c != Category.PROFANITY]
    sample = eval_sample(data_dir, positives, max_chars)
    y_all = np.array([int(r.any_positive) for r in sample], dtype=np.int64)
    direct = text_model.predict([r.text for r in sample])
    p_text_all = np.array([max(s[c] for c in heads) for s in direct])
    flags_text = [any(s[c] >= thresholds[c] for c in heads) for s in direct]
    sources = [r.source.split(":")[0] for r in sample]
    reports: list[VoiceReport] = []
    # WER-only voices first (clean sentences + the first `wer_texts` texts), so that `best`
    # among the full voices can be the lowest clean-sentence WER among them.
    plan = [(v, False) for v in wer_voices] + [(v, True) for v in voices]
    for voice, full in plan:
        if voice == BEST:
            measured = [r for r in reports if not r.by_source]
            if not measured:
                raise ModelError("--voice best needs WER-only voices (--wer-voice) to choose from")
            voice = min(measured, key=lambda r: (r.clean_wer, r.wer)).voice
        speak = speaker(voice)
        voice = voice_label(voice)
        rows = sample if full else sample[:wer_texts]
        y = y_all[: len(rows)]
        p_text = p_text_all[: len(rows)]
        flagged_text = sum(flags_text[: len(rows)])
        refs: list[str] = []
        hyps: list[str] = []
        p_audio = np.zeros(len(rows))
        flagged_audio = 0
        audio_s = analysis_s = asr_s = 0.0
        for i, row in enumerate(rows):
            data = speak(row.text)
            t = time.perf_counter()
            analysis = model.analyze(f"{voice}-{i}", data)
            analysis_s += time.perf_counter() - t
            audio_s += analysis.seconds
            asr_s += analysis.timings.get("asr", 0.0) / 1000.0
            refs.append(normalise(row.text))
            hyps.append(normalise(analysis.transcript))
            p_audio[i] = max(analysis.scores.get(c, 0.0) for c in heads)
            flagged_audio += any(analysis.scores.get(c, 0.0) >= thresholds[c] for c in heads)
            if progress and (i + 1) % 10 == 0:
                progress(f"{voice}: {i + 1}/{len(rows)} texts")
        clean_hyps = [
            normalise(model.analyze(f"{voice}-clean-{k}", speak(text)).transcript)
            for k, text in enumerate(CLEAN_SENTENCES)
        ]
        clean_wer = float(jiwer.wer([normalise(t) for t in CLEAN_SENTENCES], clean_hyps))
        pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r]
        wer = float(jiwer.wer([r for r, _ in pairs], [h for _, h in pairs]))
        per_text = [float(jiwer.wer(r, h)) for r, h in pairs]
        by_source: tuple[SourceAuprc, ...] = ()
        if full:
            by_source = tuple(
                SourceAuprc(
                    src,
                    int(mask.sum()),
                    int(y[mask].sum()),
                    average_precision(y[mask], p_audio[mask]),
                    average_precision(y[mask], p_text[mask]),
                )
                for src in sorted(set(sources))
                if (mask := np.array([s == src for s in sources])).any()
            )
        reports.append(
            VoiceReport(
                voice=voice,
                texts=len(rows),
                positives=int(y.sum()),
                wer=wer,
                median_wer=float(np.median(per_text)) if per_text else math.nan,
                auprc_audio=average_precision(y, p_audio) if full else math.nan,
                auprc_text=average_precision(y, p_text) if full else math.nan,
                audio_seconds=audio_s,
                analysis_seconds=analysis_s,
                asr_seconds=asr_s,
                flagged_audio=flagged_audio,
                flagged_text=int(flagged_text),
                clean_wer=clean_wer,
                by_source=by_source,
            )
        )
    non_speech: dict[str, tuple[bool, bool]] = {}
    for kind in NON_SPEECH:
        analysis = model.analyze(kind, sox_sound(kind, seconds=5.0))
        flagged = bool(analysis.evidence) or any(
            v >= thresholds.get(c, 0.5) for c, v in analysis.scores.items()
        )
        non_speech[kind] = (bool(analysis.segments), flagged)
    if progress:
        progress(f"{len(NON_SPEECH)} non-speech clips done")
    whisper = next(v for n, v in model.model_infos if n == whisper_model)
    model.close()
    return AudioEvalReport(
        f"{whisper_model}/{whisper}", reports, non_speech, time.perf_counter() - t0
    )


def format_audio_eval(report: AudioEvalReport) -> str:
    lines = [
        f"audio path with {report.whisper}; stratified validation sample; AUPRC = 'any category'",
        "WER (normalised text: Whisper's English normaliser on both sides): over the texts / "
        "median per text / on ten clean sentences (CLEAN_SENTENCES); a voice without AUPRC "
        "was measured for WER on the first texts of the sample only",
        "",
        f"{'voice':<12} {'texts':>5} {'pos':>4} {'WER':>6} {'median':>6} {'clean':>6} "
        f"{'AUPRC audio':>11} "
        f"{'AUPRC text':>10} {'diff':>6} {'flagged a/t':>11} {'RTF':>5} {'ASR RTF':>7}",
    ]
    for v in report.voices:
        lines.append(
            f"{v.voice:<12} {v.texts:>5} {v.positives:>4} {v.wer:>6.3f} {v.median_wer:>6.3f} "
            f"{v.clean_wer:>6.3f} "
            f"{v.auprc_audio:>11.3f} "
            f"{v.auprc_text:>10.3f} {v.auprc_audio - v.auprc_text:>+6.3f} "
            f"{f'{v.flagged_audio}/{v.flagged_text}':>11} {v.rtf:>5.3f} "
            f"{v.asr_seconds / v.audio_seconds if v.audio_seconds else math.nan:>7.3f}"
        )
    full = [v for v in report.voices if v.by_source]
    if full:
        lines += [
            "",
            f"{'voice':<12} {'source':<9} {'texts':>5} {'pos':>4} {'AUPRC audio':>11} "
            f"{'AUPRC text':>10} {'diff':>6}",
        ]
        for v in full:
            for a in v.by_source:
                lines.append(
                    f"{v.voice:<12} {a.source:<9} {a.texts:>5} {a.positives:>4} "
                    f"{a.auprc_audio:>11.3f} {a.auprc_text:>10.3f} "
                    f"{a.auprc_audio - a.auprc_text:>+6.3f}"
                )
    n = len(report.non_speech)
    lines += [
        "",
        f"non-speech clips (sox, 5 s each): {report.non_speech_transcribed}/{n} transcribed, "
        f"{report.non_speech_flagged}/{n} flagged",
    ]
    for kind, (transcribed, flagged) in report.non_speech.items():
        if transcribed or flagged:
            lines.append(f"  {kind}: transcribed={transcribed} flagged={flagged}")
    lines.append(f"({report.seconds:.0f} s)")
    return "\n".join(lines)
