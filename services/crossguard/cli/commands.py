"""Implementations of the `crossguard` subcommands (kept apart from click wiring)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crossguard.cli.items import LabeledItem, build_item, bundled_samples, load_jsonl
from crossguard.cli.render import (
    ACTION_STYLE,
    action_name,
    missing,
    print_decision,
    top_categories,
)
from crossguard.core.settings import KafkaSettings, ModelSettings
from crossguard.v1 import content_pb2, decision_pb2

if TYPE_CHECKING:
    from crossguard.cli.stack import LocalStack
    from crossguard.core.model_repository import ModelRepository

console = Console(stderr=False)
note = Console(stderr=True)


def _notify(msg: str) -> None:
    note.print(f"[dim]·[/] {msg}")


def _model_root(root: Path | None) -> Path:
    return root or ModelSettings().model_repository


def _ensure_models() -> ModelRepository:
    """The configured model repository, with the default models built first if any is missing
    (the build's table goes to stderr, so that `moderate --json` keeps a clean stdout)."""
    from crossguard.core.model_repository import MANIFEST_FILE, ModelRepository
    from crossguard.models.build import DEFAULT_MODELS

    root = ModelSettings().model_repository
    required = [m for m in DEFAULT_MODELS if m.available is None or m.available()]
    if any(not (root / m.name / m.version / MANIFEST_FILE).is_file() for m in required):
        _notify(f"models missing in {root}; building them (one time)")
        run_models_build(None, False, out=note)
    return ModelRepository(root)


def _print_review(stack: LocalStack) -> None:
    from crossguard.cli.stack import REVIEW_DEMO_USER, review_demo_password

    assert stack.info is not None
    console.print(
        f"[bold]review UI[/] {stack.info.review_url}  login [bold]{REVIEW_DEMO_USER}[/] / "
        f"{review_demo_password(stack.state_dir)}  (also demo-reviewer, demo-admin; same password)"
    )


def _serve_until_interrupted(stack: LocalStack) -> int:
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop:
            dead = stack.check()
            if dead:
                note.print(f"[red]stopped unexpectedly: {', '.join(dead)}; shutting down[/]")
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    _notify("shutting down")
    return 0


def run_up() -> int:
    from crossguard.cli.stack import LocalStack

    _ensure_models()
    with LocalStack(notify=_notify) as stack:
        assert stack.info is not None
        console.print(
            f"[bold green]crossguard is up[/]  broker {stack.info.bootstrap}  "
            f"text {stack.info.text_endpoint}  vision {stack.info.vision_endpoint}  "
            f"consistency {stack.info.consistency_endpoint}"
        )
        _print_review(stack)
        console.print("send items with `crossguard moderate --text ...`; Ctrl-C stops everything")
        return _serve_until_interrupted(stack)


async def _stream(
    kafka: KafkaSettings,
    items: Sequence[LabeledItem],
    wait_s: float,
    *,
    live: bool,
) -> tuple[dict[str, decision_pb2.ModerationDecision], dict[str, float], float]:
    """Publish items, collect one decision per id. Returns decisions, end-to-end latencies
    (item created → decided, seconds) and the elapsed wall time."""
    from crossguard.pipeline.io import iter_decisions, publish_items

    wanted = {li.item.id for li in items}
    for li in items:  # latency counts from publication, not from when the file was read
        li.item.created_at.GetCurrentTime()
    created = {li.item.id: li.item.created_at.ToDatetime() for li in items}
    got: dict[str, decision_pb2.ModerationDecision] = {}
    latency: dict[str, float] = {}
    start = time.monotonic()
    await publish_items(kafka.bootstrap_servers, [li.item for li in items], kafka=kafka)
    progress = Progress(
        TextColumn("[bold]decisions"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=note,
    )
    with progress:
        task = progress.add_task("decisions", total=len(wanted))
        try:
            async for d in iter_decisions(
                kafka.bootstrap_servers, kafka=kafka, content_ids=wanted, timeout_s=wait_s
            ):
                got[d.content_id] = d
                decided = d.decided_at.ToDatetime()
                latency[d.content_id] = (decided - created[d.content_id]).total_seconds()
                progress.advance(task)
                if live:
                    act = action_name(d.action)
                    style = ACTION_STYLE.get(act, "")
                    gaps = f"  [dim]missing {missing(d)}[/]" if d.missing_signals else ""
                    progress.console.print(
                        f"[{style}]{act:<8}[/] {d.content_id:<16} {top_categories(d, 2)}{gaps}",
                        soft_wrap=True,
                        highlight=False,
                    )
        except TimeoutError:
            note.print(f"[red]timed out after {wait_s:.0f}s: {len(wanted) - len(got)} missing[/]")
    return got, latency, time.monotonic() - start


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _summary(
    items: Sequence[LabeledItem],
    got: dict[str, decision_pb2.ModerationDecision],
    latency: dict[str, float],
    elapsed: float,
) -> Table:
    actions = Counter(action_name(d.action) for d in got.values())
    with_missing = sum(1 for d in got.values() if d.missing_signals)
    table = Table(title="summary")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("items sent", str(len(items)))
    table.add_row("decisions", str(len(got)))
    for act in ("ALLOW", "AGE_RESTRICT", "LIMIT_VISIBILITY", "ESCALATE", "BLOCK"):
        table.add_row(f"  {act.lower()}", str(actions.get(act, 0)))
    table.add_row("with missing signals", str(with_missing))
    table.add_row("throughput (items/s)", f"{len(got) / elapsed:.1f}" if elapsed else "-")
    lat = list(latency.values())
    table.add_row("latency p50 (ms)", f"{_percentile(lat, 50) * 1000:.0f}")
    table.add_row("latency p99 (ms)", f"{_percentile(lat, 99) * 1000:.0f}")
    return table


def run_demo(samples: Path | None, timeout: float, keep_serving: bool) -> int:
    from crossguard.cli.stack import LocalStack

    _ensure_models()
    path = samples or bundled_samples()
    run = uuid.uuid4().hex[:6]
    items = [LabeledItem(_with_id(li, f"{li.item.id}-{run}"), li.labels) for li in load_jsonl(path)]
    _notify(f"{len(items)} items from {path}")
    with LocalStack(notify=_notify, write_state=False) as stack:
        assert stack.info is not None
        _print_review(stack)
        got, latency, elapsed = asyncio.run(
            _stream(stack.info.kafka_settings(), items, timeout, live=True)
        )
        console.print(_summary(items, got, latency, elapsed))
        if keep_serving:
            console.print("escalated items wait in the review UI above; Ctrl-C stops everything")
            _print_review(stack)
            if _serve_until_interrupted(stack):
                return 1
    return 0 if len(got) == len(items) else 1


def _with_id(li: LabeledItem, new_id: str) -> content_pb2.ContentItem:
    item = content_pb2.ContentItem()
    item.CopyFrom(li.item)
    item.id = new_id
    return item


def run_moderate(
    texts: Sequence[str],
    images: Sequence[Path],
    audios: Sequence[Path],
    tenant: str,
    surface: str,
    as_json: bool,
    timeout: float,
) -> int:
    from crossguard.cli.stack import running_or_temporary_stack

    _ensure_models()
    item = build_item(f"cli-{uuid.uuid4()}", texts, images, audios, tenant=tenant, surface=surface)
    with running_or_temporary_stack(_notify) as info:
        got, _, _ = asyncio.run(
            _stream(info.kafka_settings(), [LabeledItem(item)], timeout, live=False)
        )
    if item.id not in got:
        note.print("[red]no decision arrived; check the logs in .crossguard/logs[/]")
        return 1
    print_decision(console, got[item.id], as_json)
    return 0


def run_replay(path: Path, limit: int | None, timeout: float, record: Path | None = None) -> int:
    from crossguard.cli.quality import quality_table
    from crossguard.cli.stack import running_or_temporary_stack

    _ensure_models()
    run = uuid.uuid4().hex[:6]
    items = [
        LabeledItem(_with_id(li, f"{li.item.id}-{run}"), li.labels)
        for li in load_jsonl(path, limit)
    ]
    _notify(f"replaying {len(items)} items from {path}")
    with running_or_temporary_stack(_notify) as info:
        got, latency, elapsed = asyncio.run(
            _stream(info.kafka_settings(), items, timeout, live=False)
        )
    console.print(_summary(items, got, latency, elapsed))
    if any(li.labels for li in items):
        console.print(quality_table(items, got))
    if record is not None:
        write_decisions(record, [got[li.item.id] for li in items if li.item.id in got])
        _notify(f"{len(got)} decisions recorded in {record}")
    return 0 if len(got) == len(items) else 1


def write_decisions(path: Path, decisions: Sequence[decision_pb2.ModerationDecision]) -> None:
    """JSON Lines of decisions: what `policy simulate` and `sor export` read."""
    import json

    from google.protobuf.json_format import MessageToDict

    with path.open("w", encoding="utf-8") as out:
        for d in decisions:
            row = MessageToDict(d, preserving_proto_field_name=True)
            out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def run_models_build(root: Path | None, force: bool, out: Console = console) -> int:
    from crossguard.models.build import build_default_repository

    target = _model_root(root)
    entries = build_default_repository(target, force=force)
    table = Table(title=f"model repository {target}")
    for col in ("model", "version", "source", "licence"):
        table.add_column(col)
    for e in entries:
        m = e.manifest
        table.add_row(
            m.name,
            m.version,
            f"{m.provenance.source_package} {m.provenance.source_version}",
            m.provenance.licence,
        )
    out.print(table)
    return 0


def run_models_export(checkpoint: Path, name: str, version: str, root: Path | None) -> int:
    from crossguard.models.export import export_checkpoint

    entry = export_checkpoint(checkpoint, _model_root(root), name=name, version=version)
    console.print(f"exported {entry.manifest.name}/{entry.manifest.version} → {entry.path}")
    console.print(f"parity max abs diff: {entry.manifest.metrics.get('parity_max_abs_diff')}")
    return 0


def run_bench_text(
    seconds: float,
    concurrency: int,
    precision: str = "both",
    batch_sizes: tuple[int, ...] = (1, 4, 16, 64),
    naive: bool = True,
    english_encoder: str = "minilm",
) -> int:
    from crossguard.bench.report import print_bench
    from crossguard.bench.text import run_text_bench

    repo = _ensure_models()
    mpnet = english_encoder != "minilm"
    if mpnet and naive:
        console.print("the naive PyTorch path is MiniLM's: not run for the mpnet encoder")
    variants: tuple[str, ...] = ("fp32", "int8") if precision == "both" else (precision,)
    if mpnet:  # fp32 only
        variants = tuple(v for v in variants if v in ("fp32", "auto")) or ("fp32",)
    for variant in variants:
        table = run_text_bench(
            repo,
            seconds=seconds,
            concurrency=concurrency,
            precision=variant,
            batch_sizes=batch_sizes,
            with_naive=naive and not mpnet,
            english_encoder=english_encoder,
        )
        print_bench(table, console)
    return 0


def run_eval_fusion(
    write_config: Path | None,
    holdout: bool,
    cache: Path,
    derive: str = "exact",
    limit: int | None = None,
    derive_cache: Path = Path(".crossguard/cache"),
    combination_head: bool = False,
    tune_signal: bool = False,
) -> int:
    from crossguard.models.fusion_eval import eval_fusion

    repo = _ensure_models()
    out = eval_fusion(
        repo,
        cache=cache,
        write_config=write_config,
        holdout=holdout,
        progress=_notify,
        derive="real" if derive == "real" else "exact",
        limit=limit,
        derive_dir=derive_cache,
        combination_head=combination_head,
        tune_signal=tune_signal,
    )
    console.print(out, highlight=False, markup=False, soft_wrap=True)
    return 0


def run_eval_fusion_derive(slot: str, limit: int | None, derive_cache: Path) -> int:
    from crossguard.consistency.parts import TextKind
    from crossguard.core.settings import ModelSettings
    from crossguard.models.fusion_data import build_dev_set
    from crossguard.models.fusion_derive import derive_slot, limited

    repo = _ensure_models()
    items = limited(build_dev_set(), limit)
    settings = ModelSettings(model_repository=repo.root)
    got = derive_slot(items, TextKind(slot), repo, settings, derive_cache, _notify)
    console.print(f"{slot}: {len(got.texts)} texts, {got.fresh} derived in {got.seconds:.0f} s")
    return 0


def run_bench_pipeline(items: int, batch_items: int, agent_concurrency: int) -> int:
    from crossguard.bench.pipeline import print_pipeline_bench, run_pipeline_bench

    repo = _ensure_models()
    bench = run_pipeline_bench(
        repo, items=items, batch_items=batch_items, agent_concurrency=agent_concurrency
    )
    print_pipeline_bench(bench, console)
    return 0


def run_eval_text(
    precision: str = "auto", cuts: str = "policy", english_encoder: str = "minilm"
) -> int:
    from crossguard.core.taxonomy import Category
    from crossguard.models.evaluate import eval_text, format_eval_report
    from crossguard.policy.loader import default_policy

    repo = _ensure_models()
    policy = default_policy()
    # Precision/recall are reported at the policy's escalate thresholds, or (cuts="heads") at
    # the heads' own, chosen on the train split.
    thresholds = {c: t for c in Category if (t := policy.thresholds(c).escalate) is not None}
    report = eval_text(
        repo,
        thresholds if cuts == "policy" else None,
        progress=_notify,
        precision=precision,
        english_encoder=english_encoder,
    )
    if cuts == "policy":
        console.print(f"policy {policy.version}: precision/recall at its escalate thresholds")
    else:
        console.print("precision/recall at the heads' own thresholds (train split)")
    console.print(format_eval_report(report), highlight=False, markup=False)
    return 0


def run_eval_audio(
    whisper_model: str,
    voices: Sequence[str],
    *,
    wer_voices: Sequence[str] = (),
    wer_texts: int = 12,
    positives: int = 40,
    max_chars: int = 300,
    split: str | None = None,
    audio_settings: dict[str, str] | None = None,
    cache_dir: Path | None = None,
    non_speech: bool = True,
) -> int:
    from crossguard.models.audio_eval import eval_audio, format_audio_eval

    repo = _ensure_models()
    report = eval_audio(
        repo,
        whisper_model=whisper_model,
        voices=voices,
        wer_voices=wer_voices,
        wer_texts=wer_texts,
        positives=positives,
        max_chars=max_chars,
        split=split,
        audio_settings=audio_settings,
        cache_dir=cache_dir,
        non_speech=non_speech,
        progress=_notify,
    )
    console.print(format_audio_eval(report), highlight=False, markup=False, soft_wrap=True)
    return 0


def run_bench_audio(streams: int, clips: int, whisper_model: str) -> int:
    from crossguard.bench.audio import run_audio_bench

    _ensure_models()
    run_audio_bench(
        ModelSettings().model_repository,
        streams=streams,
        clips_per_stream=clips,
        whisper_model=whisper_model,
        out=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True),
    )
    return 0
