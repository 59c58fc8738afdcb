"""`crossguard eval audio`: the audio path measured on speech synthesised from labeled texts.

Texts: the VALIDATION split of the OpenAI moderation samples (crossguard.models.data.split_of;
nothing here chooses a threshold), texts of at most `max_chars` characters (long posts would be
minutes of speech), up to `limit`: every positive, then negatives (eval_texts). Each text is
spoken by flite and by espeak-ng and goes through the audio model (decode → VAD → Whisper → text
models), exactly as the service runs it. Reported per voice:

- WER of the transcript against the text (both through Whisper's English normaliser; jiwer);
- "any category" AUPRC of the audio path's scores against the same texts scored directly by
  the same text model, on the same labels;
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

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.data import Example, default_data_dir, load_openai, select
from crossguard.models.evaluate import average_precision
from crossguard.models.speech_synth import NON_SPEECH, espeak_wav, flite_wav, sox_sound

VOICES: dict[str, Callable[[str], bytes]] = {"flite": flite_wav, "espeak-ng": espeak_wav}

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


def eval_texts(
    data_dir: Path | None = None, limit: int | None = None, max_chars: int = 300
) -> list[Example]:
    rows = [
        r
        for r in select(load_openai(data_dir or default_data_dir()), "validation")
        if len(r.text.strip()) <= max_chars and r.text.strip()
    ]
    rows.sort(key=lambda r: hashlib.sha256(r.text.encode()).hexdigest())
    if not limit or limit >= len(rows):
        return rows
    # Every positive first (they are few), then negatives, each in sha256 order: AUPRC needs
    # positives, and the choice depends on nothing but the texts.
    positives = [r for r in rows if r.any_positive]
    negatives = [r for r in rows if not r.any_positive]
    return (positives + negatives)[:limit]


def eval_audio(
    repository: ModelRepository,
    *,
    whisper_model: str = "whisper-base",
    voices: Sequence[str] = ("flite", "espeak-ng"),
    limit: int | None = 48,
    max_chars: int = 300,
    data_dir: Path | None = None,
    threads: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AudioEvalReport:
    from crossguard.audio.model import AudioModel
    from crossguard.audio.settings import AudioServiceSettings
    from crossguard.text.model import TextModel

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
    rows = eval_texts(data_dir, limit, max_chars)
    y = np.array([int(r.any_positive) for r in rows], dtype=np.int64)
    direct = text_model.predict([r.text for r in rows])
    p_text = np.array([max(s[c] for c in heads) for s in direct])
    flagged_text = sum(any(s[c] >= thresholds[c] for c in heads) for s in direct)
    reports: list[VoiceReport] = []
    for voice in voices:
        speak = VOICES[voice]
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
        reports.append(
            VoiceReport(
                voice=voice,
                texts=len(rows),
                positives=int(y.sum()),
                wer=wer,
                median_wer=float(np.median(per_text)) if per_text else math.nan,
                auprc_audio=average_precision(y, p_audio),
                auprc_text=average_precision(y, p_text),
                audio_seconds=audio_s,
                analysis_seconds=analysis_s,
                asr_seconds=asr_s,
                flagged_audio=flagged_audio,
                flagged_text=int(flagged_text),
                clean_wer=clean_wer,
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
        f"audio path with {report.whisper}; OpenAI moderation validation texts; AUPRC = 'any "
        "category'",
        "WER: over the texts / median per text / on ten clean sentences (CLEAN_SENTENCES)",
        "",
        f"{'voice':<10} {'texts':>5} {'pos':>4} {'WER':>6} {'median':>6} {'clean':>6} "
        f"{'AUPRC audio':>11} "
        f"{'AUPRC text':>10} {'diff':>6} {'flagged a/t':>11} {'RTF':>5} {'ASR RTF':>7}",
    ]
    for v in report.voices:
        lines.append(
            f"{v.voice:<10} {v.texts:>5} {v.positives:>4} {v.wer:>6.3f} {v.median_wer:>6.3f} "
            f"{v.clean_wer:>6.3f} "
            f"{v.auprc_audio:>11.3f} "
            f"{v.auprc_text:>10.3f} {v.auprc_audio - v.auprc_text:>+6.3f} "
            f"{f'{v.flagged_audio}/{v.flagged_text}':>11} {v.rtf:>5.3f} "
            f"{v.asr_seconds / v.audio_seconds if v.audio_seconds else math.nan:>7.3f}"
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
