"""Text safety model: MiniLM-L6 encoder + per-category heads + profanity, all ONNX.

Runtime dependencies: onnxruntime, numpy, tokenizers (no torch/transformers). Entries come from a
model repository built by `crossguard models build`:

    minilm-l6-encoder/3   tokenizer.json + model.onnx (fp32) + model.int8.onnx (dynamic int8)
                          (input_ids, attention_mask -> embedding, features = per-layer pooled
                          hidden states); the manifest's preprocessing["variants"] names them
    profanity/1           model.onnx (text [batch,1] -> offensive [batch])
    text-heads/5          model.onnx (features, profanity -> probabilities [batch,k]); trained
                          on fp32 features, used with either encoder variant

    minilm-l6-encoder-fp16/3  the same encoder fused by onnxruntime's transformer optimizer and
                          converted to fp16 (for GPUs), with its parity with fp32 recorded in
                          its manifest (metrics["fp16_parity_ok"])

The English encoder (`english_encoder=`, CROSSGUARD_TEXT_ENGLISH_ENCODER) is "minilm" (the
entries above, the CPU default) or "mpnet": mpnet-base-encoder/1 (all-mpnet-base-v2, fp32 only)
with text-heads-mpnet/1, better on validation and the development cases at about 5x the
encoder cost per text (docs/text-model.md "Encoder comparison"): an option for GPU nodes.

Encoder precision (`precision=`, CROSSGUARD_TEXT_ENCODER_PRECISION): "auto" serves int8 when the
onnxruntime providers include no CUDA (about 2x faster on CPU), and on CUDA fp16 when its entry
is there and its parity holds, else fp32 (the dynamic int8 kernels are CPU-only); "fp32" /
"int8" / "fp16" force one. The profanity model (string ops: 9 host-device copies under CUDA)
and the small heads always run on the CPU provider; only the encoder goes to the GPU.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from crossguard.core.errors import ModelError, NotReady
from crossguard.core.model_repository import MODEL_FILE, ModelEntry, ModelRepository
from crossguard.core.onnx_session import CUDA, choose_providers, session_from_settings
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.text.encoders import (
    DEFAULT_ENGLISH_ENCODER,
    ENGLISH_ENCODERS,
    check_english_encoder,
)
from crossguard.text.language import LanguageIdentifier, LanguageVerdict
from crossguard.text.normalise import Normaliser, vocabulary_from_tokenizer

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

# The default English encoder's entries (crossguard.text.encoders lists every choice).
ENCODER, HEADS = ENGLISH_ENCODERS[DEFAULT_ENGLISH_ENCODER]
ENCODER_FP16 = "minilm-l6-encoder-fp16"
PROFANITY = "profanity"
# The multilingual path (crossguard.models.multilingual): texts the English encoder cannot read
# whose language is in the multilingual encoder's manifest are scored by it and its heads.
ML_ENCODER = "use-m3-encoder"
ML_HEADS = "text-heads-multilingual"
ENGLISH = "english"
MULTILINGUAL = "multilingual"
# Texts whose reader was decided (identify_language, then predict on the same text): most recent.
_READER_CACHE = 4096

# A batch is sorted by token length and cut into sub-batches (one onnxruntime call each) so that
# padding stays low: a sub-batch grows while its padding stays within max_padding × its real
# tokens and it holds at most sub_batch texts (plan_sub_batches). Measured on 2 quiet CPU cores,
# 512 mixed texts (tokens mean 46, p90 84), 2 ORT threads, spinning off, 3 interleaved rounds,
# items/s at batch 4 / 16 / 64: fixed 8: 88 / 116 / 163; fixed 4: 91 / 135 / 153;
# cap 16, padding ≤ 0.1: 136 / 146 / 158; cap 16, ≤ 0.25: 136 / 164 / 151;
# cap 32, ≤ 0.5: 130 / 138 / 134; cap 64, ≤ 0.25: 140 / 152 / 158. Fixed sub-batches of 1 (no
# padding, most calls): 1 thread 88-94 at batch 16/64 vs 97/91 bucketed — per-call overhead is
# small, padding is what costs. On a GPU larger sub-batches pay off: pass sub_batch=/max_padding=.
DEFAULT_SUB_BATCH = 16
DEFAULT_MAX_PADDING = 0.25
# Upstream alt-profanity-check's predict() cut-off.
PROFANITY_THRESHOLD = 0.5
# Characters looked at by the encoder; 256 word pieces never need more (cheap guard on huge input).
MAX_ENCODER_CHARS = 16_384
# Languages the encoder reads when its manifest does not say (all-MiniLM-L6-v2: English only).
DEFAULT_LANGUAGES = ("en",)

Precision = Literal["auto", "fp32", "int8", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def check_precision(requested: str) -> str:
    """`requested` if it names an encoder precision, else a ModelError."""
    if requested not in PRECISIONS:
        raise ModelError(f"encoder precision {requested!r} is not one of {list(PRECISIONS)}")
    return requested


def fp16_parity_ok(entry: ModelEntry | None) -> bool:
    """Whether an fp16 encoder entry's recorded parity with fp32 holds (built by
    crossguard.models.encoder_fp16)."""
    return entry is not None and bool(entry.manifest.metrics.get("fp16_parity_ok", False))


def resolve_precision(requested: str, providers: Sequence[str]) -> str:
    """The encoder variant, "fp32" or "int8", for a requested precision and the resolved
    onnxruntime providers (crossguard.core.onnx_session.choose_providers): "auto" is fp32 when
    CUDA is used (ORT's dynamic int8 path, DynamicQuantizeLinear + MatMulInteger, runs on CPU)
    and int8 otherwise."""
    if check_precision(requested) == "auto":
        return "fp32" if CUDA in providers else "int8"
    return requested


def encoder_variant(
    entry_name: str, preprocessing: Mapping[str, Any], requested: str, providers: Sequence[str]
) -> tuple[str, str]:
    """(precision, file name) of the encoder graph to load from an entry.

    The entry's preprocessing["variants"] maps precision -> file. An entry without it (made by
    `crossguard models export`, or minilm-l6-encoder before version 3) has only model.onnx:
    used for "fp32" and "auto"; "int8" is a ModelError."""
    if requested == "fp16":
        raise ModelError(
            f"the fp16 encoder is its own entry ({ENCODER_FP16}), not a variant of {entry_name}; "
            "build it with `crossguard models build`"
        )
    variants = preprocessing.get("variants")
    if not variants:
        if requested == "int8":
            raise ModelError(
                f"{entry_name} has no int8 variant (its manifest lists no preprocessing "
                "'variants', only model.onnx); rebuild it with `crossguard models build` or set "
                "CROSSGUARD_TEXT_ENCODER_PRECISION to auto or fp32"
            )
        check_precision(requested)
        return "fp32", MODEL_FILE
    precision = resolve_precision(requested, providers)
    if precision not in variants and requested == "auto" and "fp32" in variants:
        precision = "fp32"
    if precision not in variants:
        raise ModelError(
            f"{entry_name} has no {precision} variant (it has {sorted(variants)}); set "
            "CROSSGUARD_TEXT_ENCODER_PRECISION to one of them or rebuild with "
            "`crossguard models build`"
        )
    return precision, str(variants[precision])


def pad_token_ids(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) [n, longest] int64 for the encoder, zero-padded on the
    right."""
    width = max(len(s) for s in seqs)
    input_ids = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for row, seq in enumerate(seqs):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _session(
    entry: ModelEntry,
    settings: ModelSettings,
    allow_spinning: bool | None = None,
    path: Path | None = None,
    cpu: bool = False,
) -> ort.InferenceSession:
    """`cpu`: on the CPU provider whatever CROSSGUARD_ONNX_PROVIDERS says."""
    return session_from_settings(
        path or entry.onnx_path, settings, cpu=cpu, allow_spinning=allow_spinning
    )


def plan_sub_batches(
    lengths: Sequence[int], max_size: int, max_padding: float | None, sort: bool = True
) -> list[list[int]]:
    """Cut a batch into sub-batches (lists of indices into `lengths`), one encoder call each.

    With `sort`, texts are taken shortest first. A sub-batch grows greedily while it holds at
    most `max_size` texts and its padding (padded tokens − real tokens) stays within
    `max_padding` × its real tokens; `max_padding=None` gives fixed sub-batches of `max_size`.
    A small batch of similar lengths is therefore one call, and a mixed one is split where the
    lengths jump instead of at fixed positions.
    """
    order = (
        sorted(range(len(lengths)), key=lambda i: lengths[i]) if sort else list(range(len(lengths)))
    )
    size = max(1, max_size)
    if max_padding is None:
        return [order[s : s + size] for s in range(0, len(order), size)]
    chunks: list[list[int]] = []
    chunk: list[int] = []
    width = real = 0
    for i in order:
        n = max(1, lengths[i])
        if chunk:
            new_width = max(width, n)
            new_real = real + n
            if (
                len(chunk) < size
                and new_width * (len(chunk) + 1) - new_real <= max_padding * new_real
            ):
                chunk.append(i)
                width, real = new_width, new_real
                continue
            chunks.append(chunk)
        chunk, width, real = [i], n, n
    if chunk:
        chunks.append(chunk)
    return chunks


class TextEncoder:
    """Tokenizer + ONNX sentence encoder: texts -> L2-normalised embeddings [n, 384].

    `precision`: "auto", "fp32" or "int8" (see encoder_variant); `self.precision` is the variant
    loaded ("fp32" or "int8")."""

    def __init__(
        self,
        entry: ModelEntry,
        settings: ModelSettings,
        sub_batch: int,
        max_padding: float | None = None,
        allow_spinning: bool | None = None,
        precision: str = "auto",
        fp16_entry: ModelEntry | None = None,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.entry = entry
        pre = entry.manifest.preprocessing
        providers = choose_providers(settings.onnx_providers, onnxruntime.get_available_providers())
        name = f"{entry.manifest.name}/{entry.manifest.version}"
        self.max_length = int(pre.get("max_length", 256))
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(entry.file(pre["tokenizer"])))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()
        if precision == "fp16" and fp16_entry is None:
            raise ModelError(
                f"{ENCODER_FP16}/{entry.manifest.version} is not in the model repository; "
                "build it with `crossguard models build` or choose another "
                "CROSSGUARD_TEXT_ENCODER_PRECISION"
            )
        use_fp16 = fp16_entry is not None and (
            precision == "fp16"
            or (precision == "auto" and CUDA in providers and fp16_parity_ok(fp16_entry))
        )
        # fp16's parity with fp32 measured on this device at load (CUDA only), or None.
        self.device_parity: float | None = None
        if use_fp16 and fp16_entry is not None:
            self.precision = "fp16"
            self.session = _session(fp16_entry, settings, allow_spinning)
            if CUDA in self.session.get_providers():
                graph = self._check_fp16_on_device(fp16_entry, precision)
                if graph:  # failed: fp32 instead
                    self.precision = "fp32"
                    self.session = _session(entry, settings, allow_spinning, entry.file(graph))
        else:
            self.precision, graph = encoder_variant(name, pre, precision, providers)
            self.session = _session(entry, settings, allow_spinning, entry.file(graph))
        active = self.session.get_providers()
        if CUDA in providers and CUDA not in active and precision == "auto":
            # CUDA was chosen but onnxruntime could not start it (create_session warned; e.g. a
            # driver too old for CUDA 13): serve the variant the CPU gets instead of fp32.
            fallback, graph = encoder_variant(name, pre, precision, active)
            if fallback != self.precision:
                self.precision = fallback
                self.session = _session(entry, settings, allow_spinning, entry.file(graph))
        # int8: one text per onnxruntime call. Dynamic quantisation scales activations over the
        # whole input tensor, so in a shared call a text's scores would depend on its batch-mates
        # and padding (up to 0.065 measured); alone they are a function of the text. It costs
        # nothing on CPU: without padding, 2 callers × 1 thread did 617-692 texts/s vs 597-657
        # with sub-batches of 16 (512 mixed texts, 2 cores).
        self.sub_batch = 1 if self.precision == "int8" else max(1, sub_batch)
        self.max_padding = max_padding
        self.dim = int(entry.manifest.outputs[0].shape[-1] or 384)
        outputs = {o.name: o for o in entry.manifest.outputs}
        feats = outputs.get("features")
        self.features_dim = int(feats.shape[-1] or 0) if feats is not None else 0

    def _check_fp16_on_device(self, fp16_entry: ModelEntry, requested: str) -> str:
        """Embedding cosine of the fp16 graph on this device with the fp32 reference stored in
        its entry (parity.json); logs it. Returns "" when it holds (or fp16 was forced), else
        the fp32 graph's file to serve instead."""
        import json

        pre = fp16_entry.manifest.preprocessing
        ref = json.loads(fp16_entry.file(str(pre.get("parity_file", "parity.json"))).read_text())
        expected = np.asarray(ref["embedding"], dtype=np.float32)
        # Set for this check; __init__ sets them for serving afterwards.
        self.sub_batch, self.max_padding, self.features_dim = 64, None, 0
        self.dim = expected.shape[1]
        got = self._run(list(ref["texts"]), ["embedding"], True)[0]
        den = np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
        cosine = float(np.min(np.sum(got * expected, axis=1) / np.maximum(den, 1e-12)))
        self.device_parity = cosine
        limit = float(ref.get("min_cosine", 0.999))
        holds = cosine >= limit
        log.log(
            logging.INFO if holds else logging.ERROR,
            "fp16 encoder parity on the GPU: embedding cosine with fp32 %.6f (limit %s)%s",
            cosine,
            limit,
            "" if holds or requested == "fp16" else "; serving fp32 instead",
            extra={"entry": f"{fp16_entry.manifest.name}/{fp16_entry.manifest.version}"},
        )
        if holds or requested == "fp16":
            return ""
        return str(self.entry.manifest.preprocessing.get("variants", {}).get("fp32", MODEL_FILE))

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        encs = self.tokenizer.encode_batch([t[:MAX_ENCODER_CHARS] for t in texts])
        return [e.ids for e in encs]

    def embed(self, texts: Sequence[str], sort: bool = True) -> np.ndarray:
        """L2-normalised sentence embeddings [n, dim]."""
        return self._run(texts, ["embedding"], sort)[0]

    def encode(self, texts: Sequence[str], sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(embedding [n, dim], features [n, features_dim]) in one encoder pass."""
        self._require_features()
        emb, feats = self._run(texts, ["embedding", "features"], sort)
        return emb, feats

    def features(self, texts: Sequence[str], sort: bool = True) -> np.ndarray:
        """Only the heads' input [n, features_dim] (the embedding is not fetched)."""
        self._require_features()
        return self._run(texts, ["features"], sort)[0]

    def _require_features(self) -> None:
        if not self.features_dim:
            raise ModelError(
                f"{self.entry.manifest.name}/{self.entry.manifest.version} has no "
                "`features` output; rebuild with `crossguard models build`"
            )

    def _run(self, texts: Sequence[str], names: list[str], sort: bool) -> list[np.ndarray]:
        dims = {"embedding": self.dim, "features": self.features_dim}
        outs = [np.zeros((len(texts), dims[n]), dtype=np.float32) for n in names]
        if not texts:
            return outs
        ids = self.token_ids(texts)
        plan = plan_sub_batches([len(x) for x in ids], self.sub_batch, self.max_padding, sort)
        for chunk in plan:
            input_ids, mask = pad_token_ids([ids[i] for i in chunk])
            got = self.session.run(names, {"input_ids": input_ids, "attention_mask": mask})
            for out, value in zip(outs, got, strict=True):
                out[chunk] = value
        return outs


class ProfanityScorer:
    """alt-profanity-check as ONNX: raw texts -> probability of offensive language [n]."""

    def __init__(
        self, entry: ModelEntry, settings: ModelSettings, allow_spinning: bool | None = None
    ) -> None:
        self.entry = entry
        # Always on the CPU: its string ops would cost host-device copies under CUDA.
        self.session = _session(entry, settings, allow_spinning, cpu=True)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0,), dtype=np.float32)
        arr = np.asarray(list(texts), dtype=object).reshape(-1, 1)
        out = self.session.run(["offensive"], {"text": arr})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)


class MultilingualScorer:
    """USE multilingual encoder + its heads: sanitised texts -> probabilities per category.

    Not normalised first: crossguard.text.normalise's rules are built on the English
    vocabulary (the heads were trained the same way, crossguard.models.multilingual_heads)."""

    def __init__(
        self,
        encoder_entry: ModelEntry,
        heads_entry: ModelEntry,
        settings: ModelSettings,
        sub_batch: int,
        max_padding: float | None,
        allow_spinning: bool | None,
    ) -> None:
        required = heads_entry.manifest.preprocessing.get("requires", {})
        if required.get(encoder_entry.manifest.name) != encoder_entry.manifest.version:
            raise ModelError(
                f"{ML_HEADS}/{heads_entry.manifest.version} needs {required}, the repository "
                f"serves {encoder_entry.manifest.name}/{encoder_entry.manifest.version}"
            )
        self.encoder = TextEncoder(
            encoder_entry, settings, sub_batch, max_padding, allow_spinning, precision="fp32"
        )
        self.heads = _session(heads_entry, settings, allow_spinning=allow_spinning, cpu=True)
        self.languages = frozenset(
            str(x) for x in encoder_entry.manifest.preprocessing.get("languages", ())
        )
        self.categories = [Category(label) for label in heads_entry.manifest.labels]
        raw = heads_entry.manifest.metrics.get("thresholds", {})
        # Chosen on the English train split (crossguard.models.multilingual_heads); reported by
        # `crossguard eval text`. Decisions use the policy's thresholds, as for English.
        self.thresholds = {c: float(raw.get(c.value, 0.5)) for c in self.categories}
        self.infos = [
            (encoder_entry.manifest.name, encoder_entry.manifest.version),
            (heads_entry.manifest.name, heads_entry.manifest.version),
        ]

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        emb = self.encoder.embed(texts)
        return np.asarray(self.heads.run(["probabilities"], {"embedding": emb})[0])


class TextModel:
    """Scores texts for every supported category (heads' categories + profanity).

    Implements the Model contract (crossguard.core.model_contract.Model[str, dict[Category,
    float]]). `predict` and `embed` are blocking and thread-safe (onnxruntime sessions are).
    """

    name = "crossguard-text"

    def __init__(
        self,
        repository: ModelRepository | None = None,
        settings: ModelSettings | None = None,
        *,
        sub_batch: int = DEFAULT_SUB_BATCH,
        max_padding: float | None = DEFAULT_MAX_PADDING,
        allow_spinning: bool | None = None,
        precision: str = "auto",
        normalise: bool = True,
        multilingual: bool = False,
        english_encoder: str = "minilm",
    ) -> None:
        """`sub_batch`: most texts per encoder call; `max_padding`: most padded tokens per real
        token in one call (None: fixed sub-batches of `sub_batch`), see plan_sub_batches;
        `allow_spinning`: onnxruntime's intra-op spin-wait (None: onnxruntime's default);
        `precision`: encoder variant, "auto" (int8 on CPU, fp32 on CUDA), "fp32" or "int8";
        `normalise`: undo obfuscation (crossguard.text.normalise) before the models read a
        text (off only to measure what it does); `multilingual`: score texts in the
        multilingual encoder's languages with it (MultilingualScorer) instead of reporting them
        unsupported, when its entries are in the repository; `english_encoder`: a key of
        ENGLISH_ENCODERS ("minilm" or "mpnet"; mpnet has fp32 only)."""
        check_precision(precision)
        self.english_encoder = check_english_encoder(english_encoder, precision)
        self._encoder_name, self._heads_name = ENGLISH_ENCODERS[english_encoder]
        self.settings = settings or ModelSettings()
        self.repository = repository or ModelRepository(self.settings.model_repository)
        self.sub_batch = sub_batch
        self.max_padding = max_padding
        self.allow_spinning = allow_spinning
        self.precision = precision
        self.normalise = normalise
        self.multilingual = multilingual
        self._ml: MultilingualScorer | None = None
        self._readers: dict[str, str] = {}
        self._normaliser: Normaliser | None = None
        self._languages: LanguageIdentifier | None = None
        self.version = "unloaded"
        self._lock = threading.Lock()
        self._encoder: TextEncoder | None = None
        self._profanity: ProfanityScorer | None = None
        self._heads: Any = None
        self._head_categories: list[Category] = []
        self._thresholds: dict[Category, float] = {}
        self._infos: list[tuple[str, str]] = []

    # -- Model contract -----------------------------------------------------------------------

    def load(self) -> None:
        with self._lock:
            if self._encoder is not None:
                return
            enc_name, heads_name = self._encoder_name, self._heads_name
            enc_entry = self.repository.get(enc_name)
            prof_entry = self.repository.get(PROFANITY)
            heads_entry = self.repository.get(heads_name)
            for entry in (enc_entry, prof_entry, heads_entry):
                entry.verify()
            required = heads_entry.manifest.preprocessing.get("requires", {})
            have = {enc_name: enc_entry.manifest.version, PROFANITY: prof_entry.manifest.version}
            for dep, ver in required.items():
                if have.get(dep) != str(ver):
                    raise ModelError(
                        f"{heads_name}/{heads_entry.manifest.version} was trained on "
                        f"{dep}/{ver}, but the repository serves {dep}/{have.get(dep)}"
                    )
            categories = [Category(label) for label in heads_entry.manifest.labels]
            raw_thresholds = heads_entry.manifest.metrics.get("thresholds", {})
            thresholds = {c: float(raw_thresholds.get(c.value, 0.5)) for c in categories}
            thresholds[Category.PROFANITY] = PROFANITY_THRESHOLD

            spin = self.allow_spinning
            fp16_entry = self._fp16_entry(enc_entry.manifest.version)
            encoder = TextEncoder(
                enc_entry,
                self.settings,
                self.sub_batch,
                self.max_padding,
                allow_spinning=spin,
                precision=self.precision,
                fp16_entry=fp16_entry,
            )
            profanity = ProfanityScorer(prof_entry, self.settings, allow_spinning=spin)
            # A few small matmuls: cheaper on the CPU than a round trip to the GPU.
            heads = _session(heads_entry, self.settings, allow_spinning=spin, cpu=True)
            reads = enc_entry.manifest.preprocessing.get("languages") or DEFAULT_LANGUAGES
            languages = LanguageIdentifier([str(x) for x in reads])
            languages.load()
            self._languages = languages
            if self.normalise:
                tokenizer_file = enc_entry.file(enc_entry.manifest.preprocessing["tokenizer"])
                vocabulary = vocabulary_from_tokenizer(tokenizer_file.read_text("utf-8"))
                self._normaliser = Normaliser(vocabulary)

            self._head_categories = categories
            self._thresholds = thresholds
            # The encoder's version names the variant served, e.g. ("minilm-l6-encoder", "3-int8").
            self._infos = [
                (enc_entry.manifest.name, f"{enc_entry.manifest.version}-{encoder.precision}"),
                *((e.manifest.name, e.manifest.version) for e in (heads_entry, prof_entry)),
            ]
            self._ml = self._load_multilingual() if self.multilingual else None
            if self._ml is not None:
                self._infos.extend(self._ml.infos)
            self.version = "+".join(f"{n}:{v}" for n, v in self._infos)
            self._profanity, self._heads, self._encoder = profanity, heads, encoder

    def _load_multilingual(self) -> MultilingualScorer | None:
        """The multilingual path, or None (logged) when its entries are not in the repository:
        the texts it would read are then reported unsupported, as without it."""
        try:
            enc_entry = self.repository.get(ML_ENCODER)
            heads_entry = self.repository.get(ML_HEADS)
        except ModelError as exc:
            log.warning(
                "multilingual text model not loaded, non-English texts stay "
                "unsupported_language: %s",
                exc,
            )
            return None
        enc_entry.verify()
        heads_entry.verify()
        return MultilingualScorer(
            enc_entry,
            heads_entry,
            self.settings,
            self.sub_batch,
            self.max_padding,
            self.allow_spinning,
        )

    def _fp16_entry(self, version: str) -> ModelEntry | None:
        """The fp16 encoder derived from encoder `version`, verified, or None (MiniLM only)."""
        if (
            self.precision not in ("auto", "fp16")
            or self.english_encoder != DEFAULT_ENGLISH_ENCODER
        ):
            return None
        try:
            entry = self.repository.get(ENCODER_FP16, version)
        except ModelError:
            return None
        entry.verify()
        return entry

    def ready(self) -> bool:
        return self._encoder is not None

    def predict(self, batch: Sequence[str]) -> list[dict[Category, float]]:
        """Probabilities in [0, 1] for every category in `categories`, one dict per text."""
        encoder, profanity, heads = self._require()
        texts = [t if isinstance(t, str) else str(t) for t in batch]
        if not texts:
            return []
        raw = texts
        if self._normaliser is not None:
            texts = [self._normaliser(t) for t in texts]
        prof = profanity.score(texts)
        ml = self._ml
        foreign = (
            [i for i, (r, t) in enumerate(zip(raw, texts, strict=True)) if self._reader(r, t)]
            if ml is not None
            else []
        )
        read_elsewhere = set(foreign)
        english = [i for i in range(len(texts)) if i not in read_elsewhere]
        out: list[dict[Category, float]] = [{} for _ in texts]
        if english:
            feats = encoder.features([texts[i] for i in english])
            probs = heads.run(["probabilities"], {"features": feats, "profanity": prof[english]})[0]
            for k_row, row in enumerate(english):
                out[row] = {c: float(probs[k_row, k]) for k, c in enumerate(self._head_categories)}
        if foreign and ml is not None:
            probs = ml.predict([raw[i] for i in foreign])
            for k_row, row in enumerate(foreign):
                got = {c: float(probs[k_row, k]) for k, c in enumerate(ml.categories)}
                out[row] = {c: got.get(c, 0.0) for c in self._head_categories}
        for row, scores in enumerate(out):
            scores[Category.PROFANITY] = float(prof[row])
        return out

    def _reader(self, raw: str, normalised: str) -> bool:
        """Whether the multilingual path reads this text (the English one cannot, and its
        language is one of the multilingual encoder's); remembered for the last texts, which
        identify_language usually saw just before."""
        reader = self._readers.get(raw)
        if reader is None:
            reader = self._verdict(normalised).reader
        return reader == MULTILINGUAL

    def close(self) -> None:
        with self._lock:
            self._encoder = None
            self._profanity = None
            self._heads = None
            self._normaliser = None
            self._languages = None
            self._ml = None
            self._readers = {}
            self.version = "unloaded"

    # -- extras -------------------------------------------------------------------------------

    def identify_language(self, text: str) -> LanguageVerdict:
        """The language of `text` (after the same normalisation `predict` applies) and whether
        the encoder reads it (crossguard.text.language)."""
        normaliser = self._normaliser
        verdict = self._verdict(normaliser(text) if normaliser is not None else text)
        if self._ml is not None:
            if len(self._readers) >= _READER_CACHE:
                self._readers.clear()
            self._readers[text] = verdict.reader
        return verdict

    def _verdict(self, normalised: str) -> LanguageVerdict:
        languages = self._languages
        if languages is None:
            raise NotReady("text model is not loaded; call load() first")
        verdict = languages.identify(normalised)
        if verdict.supported:
            return replace(verdict, reader=ENGLISH)
        ml = self._ml
        if ml is not None and verdict.language in ml.languages:
            return replace(verdict, supported=True, reader=MULTILINGUAL)
        return verdict

    @property
    def multilingual_thresholds(self) -> dict[Category, float]:
        """The multilingual heads' own thresholds (empty when that path is not loaded)."""
        self._require()
        return dict(self._ml.thresholds) if self._ml is not None else {}

    def models_for(self, readers: Collection[str]) -> list[tuple[str, str]]:
        """The entries that scored texts read by `readers` (LanguageVerdict.reader: ENGLISH,
        MULTILINGUAL, or "" for an unsupported text, which the English path scores): the
        profanity model always, each path's encoder and heads when it scored something."""
        self._require()
        ml_infos = self._ml.infos if self._ml is not None else []
        english = [i for i in self._infos if i not in ml_infos and i[0] != PROFANITY]
        prof = [i for i in self._infos if i[0] == PROFANITY]
        chosen = english if not readers or set(readers) - {MULTILINGUAL} else []
        if MULTILINGUAL in readers:
            chosen = chosen + ml_infos
        return chosen + prof

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence embeddings of the English encoder, [len(texts), dim] float32
        (cosine = dot; 384 for MiniLM, 768 for MPNet)."""
        encoder, _, _ = self._require()
        return encoder.embed(list(texts))

    @property
    def categories(self) -> list[Category]:
        self._require()
        return [*self._head_categories, Category.PROFANITY]

    @property
    def thresholds(self) -> dict[Category, float]:
        """Per-category decision thresholds (heads: chosen on the training split; profanity 0.5)."""
        self._require()
        return dict(self._thresholds)

    @property
    def encoder_precision(self) -> str:
        """The encoder variant loaded: "fp32" or "int8"."""
        encoder, _, _ = self._require()
        return encoder.precision

    @property
    def model_infos(self) -> list[tuple[str, str]]:
        """(name, version) of every repository entry used, e.g. ("text-heads", "3"); the
        encoder's version carries the variant served, e.g. ("minilm-l6-encoder", "3-int8")."""
        self._require()
        return list(self._infos)

    def _require(self) -> tuple[TextEncoder, ProfanityScorer, Any]:
        encoder, profanity, heads = self._encoder, self._profanity, self._heads
        if encoder is None or profanity is None or heads is None:
            raise NotReady("text model is not loaded; call load() first")
        return encoder, profanity, heads
