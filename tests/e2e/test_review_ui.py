"""The review UI in a real headless Chromium (Debian's, driven by Playwright; no browser
download), against the review service as `crossguard up` runs it (SQLite store) and the real
broker: log in, claim from the queue, reveal the blurred image, give a verdict with the
keyboard alone, and see the final decision on crossguard.decisions.v1. Screenshots of the
queue and task views are saved in the test's tmp dir."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import struct
import uuid
import wave
import zlib
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crossguard.core.broker import EmbeddedBroker
from crossguard.core.processes import ManagedProcess
from crossguard.core.settings import KafkaSettings
from crossguard.core.taxonomy import Category
from crossguard.core.topics import Topics, create_topics
from crossguard.pipeline.io import iter_decisions, publish_raw
from crossguard.v1 import classifier_pb2, content_pb2, decision_pb2, review_pb2, taxonomy_pb2

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "demo-password-1"
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run in a thread of its own: Playwright's sync API owns this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def png(width: int, height: int) -> bytes:
    """A colourful RGB test image (so blur and greyscale are visible in screenshots)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 4 % 256, y * 4 % 256, 160)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def silent_wav(path: Path, seconds: float = 1.0) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * int(16000 * seconds))


def review_task(media_dir: Path) -> review_pb2.ReviewTask:
    image = png(96, 64)
    (media_dir / "post.png").write_bytes(image)
    silent_wav(media_dir / "clip.wav", seconds=4.0)
    audio = (media_dir / "clip.wav").read_bytes()
    text = "Meet me after school, I will hurt you badly."
    item = content_pb2.ContentItem(id=f"ui-{uuid.uuid4().hex[:8]}", tenant="t1", surface="comment")
    item.parts.append(content_pb2.ContentPart(part_id="caption", text=text))
    item.parts.append(
        content_pb2.ContentPart(
            part_id="image-0",
            media=content_pb2.Media(
                mime_type="image/png",
                uri=(media_dir / "post.png").as_uri(),
                sha256=hashlib.sha256(image).hexdigest(),
                size=len(image),
            ),
        )
    )
    item.parts.append(
        content_pb2.ContentPart(
            part_id="audio-0",
            media=content_pb2.Media(
                mime_type="audio/wav",
                uri=(media_dir / "clip.wav").as_uri(),
                sha256=hashlib.sha256(audio).hexdigest(),
                size=len(audio),
            ),
        )
    )
    threat = Category.HARASSMENT_THREATENING.proto
    decision = decision_pb2.ModerationDecision(
        decision_id=f"auto-{item.id}",
        content_id=item.id,
        action=taxonomy_pb2.ACTION_ESCALATE,
        policy_version="default-2026.11.3",
        decided_by="pipeline",
        reasons=["harassment/threatening 0.62 ≥ escalate 0.40"],
    )
    decision.categories.extend(
        [
            taxonomy_pb2.CategoryScore(category=threat, score=0.62, severity=2),
            taxonomy_pb2.CategoryScore(category=Category.VIOLENCE.proto, score=0.41, severity=1),
        ]
    )
    start = text.index("I will hurt you")
    decision.evidence.extend(
        [
            decision_pb2.ModalityEvidence(
                modality=taxonomy_pb2.MODALITY_TEXT,
                evidence=[
                    classifier_pb2.Evidence(
                        part_id="caption",
                        category=threat,
                        weight=0.5,
                        span=classifier_pb2.TextSpan(start=start, end=start + 15),
                    )
                ],
            ),
            decision_pb2.ModalityEvidence(
                modality=taxonomy_pb2.MODALITY_IMAGE,
                evidence=[
                    classifier_pb2.Evidence(
                        part_id="image-0",
                        category=threat,
                        region=classifier_pb2.ImageRegion(x=4, y=8, width=60, height=20),
                        derived_text="YOU ARE NEXT",
                    ),
                    classifier_pb2.Evidence(
                        part_id="image-0", category=threat, hash_bank="demo-threats"
                    ),
                ],
            ),
            decision_pb2.ModalityEvidence(
                modality=taxonomy_pb2.MODALITY_AUDIO,
                evidence=[
                    classifier_pb2.Evidence(
                        part_id="audio-0",
                        category=threat,
                        time_range=classifier_pb2.AudioRange(start_ms=1200, end_ms=2900),
                        derived_text="i know where you live",
                    )
                ],
                # The part's whole transcript, as the pipeline carries it.
                transcripts=[
                    classifier_pb2.Transcript(
                        part_id="audio-0",
                        language="en",
                        segments=[
                            classifier_pb2.TimedText(
                                time_range=classifier_pb2.AudioRange(start_ms=a, end_ms=b),
                                text=text,
                            )
                            for a, b, text in (
                                (100, 1100, "hey it's me again"),
                                (1200, 2900, "i know where you live"),
                                (3000, 3900, "see you soon"),
                            )
                        ],
                    )
                ],
            ),
        ]
    )
    decision.models.extend(
        [
            classifier_pb2.ModelInfo(name="text-heads", version="3"),
            classifier_pb2.ModelInfo(name="opennsfw", version="1"),
        ]
    )
    decision.escalation.CopyFrom(
        decision_pb2.Escalation(escalated=True, rule="category:harassment/threatening")
    )
    return review_pb2.ReviewTask(task_id=f"task-{item.id}", item=item, decision=decision)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KafkaSettings, Path]]:
    """A broker, its topics, and the review service on SQLite (as `crossguard up` runs it)."""
    tmp = tmp_path_factory.mktemp("review-ui")
    media = tmp / "media"
    media.mkdir()
    with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap,
            topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
            partitions=1,
            session_timeout_ms=6000,
            producer_max_batch_size=64,
        )
        asyncio.run(create_topics(kafka, broker.bootstrap))
        proc = ManagedProcess(
            "review",
            "crossguard.review",
            {
                "CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                "CROSSGUARD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
                "CROSSGUARD_KAFKA_SESSION_TIMEOUT_MS": "6000",
                "CROSSGUARD_KAFKA_PRODUCER_MAX_BATCH_SIZE": "64",
                "CROSSGUARD_REVIEW_DATABASE_URL": f"sqlite:///{tmp}/review.db",
                "CROSSGUARD_REVIEW_PORT": "0",
                "CROSSGUARD_MEDIA_FILE_ROOT": str(media),
                "CROSSGUARD_REVIEW_BOOTSTRAP_PASSWORD": PASSWORD,
                "CROSSGUARD_REVIEW_LOG_LEVEL": "WARNING",
            },
            log_dir=tmp,
        )
        try:
            proc.start(ready="PORT", timeout=120)
            # localhost: browsers keep Secure cookies on http://localhost (a secure context).
            yield f"http://localhost:{proc.port}", kafka, media
        finally:
            proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def login(page: object, base: str, username: str) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(f"{base}/login")
    # Keyboard only: the username field has focus on load (autofocus lands after "load" on a
    # busy machine, so wait for it rather than type into nothing).
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/queue")


def test_reviewer_claims_reveals_and_decides_with_the_keyboard(
    stack: tuple[str, KafkaSettings, Path], browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    base, kafka, media = stack
    task = review_task(media)
    run_async(
        publish_raw(
            kafka.bootstrap_servers,
            [(task.item.id.encode(), task.SerializeToString(), [])],
            topic=Topics.from_settings(kafka).review,
            kafka=kafka,
        )
    )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    login(page, base, "demo-reviewer")
    row = page.locator("table.queue tbody tr", has_text=task.item.id)
    for _ in range(60):  # the consumer stores the task within moments
        if row.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(row).to_have_count(1)
    expect(row).to_contain_text("harassment/threatening")
    expect(row.locator("time.sla")).to_contain_text("left")
    page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)

    # Every form control has a label (accessibility), on the queue and the task view.
    unlabeled = (
        "() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(e => !e.labels.length && !e.getAttribute('aria-label')).length"
    )
    assert page.evaluate(unlabeled) == 0

    page.keyboard.press("c")  # claim
    page.wait_for_url(f"{base}/tasks/{task.task_id}")
    assert page.evaluate(unlabeled) == 0
    mark = page.locator("p.text mark")
    expect(mark).to_have_text("I will hurt you")
    expect(mark).to_have_attribute("data-category", "harassment/threatening")
    expect(page.locator(".ocr")).to_have_text("YOU ARE NEXT")
    expect(page.locator(".flagged-audio li")).to_have_text(
        "00:01.200–00:02.900 i know where you live"
    )
    # The whole transcript with its times, the flagged segment highlighted.
    lines = page.locator("ol.transcript li")
    expect(lines).to_have_text(
        [
            "00:00.100–00:01.100 hey it's me again",
            "00:01.200–00:02.900 i know where you live",
            "00:03.000–00:03.900 see you soon",
        ]
    )
    expect(lines.locator("mark")).to_have_count(1)
    expect(lines.nth(1).locator("mark")).to_have_attribute(
        "data-category", "harassment/threatening"
    )
    expect(page.locator(".hash")).to_contain_text("demo-threats")
    expect(page.locator("table.scores")).to_contain_text("0.620")
    expect(page.locator("dl.facts")).to_contain_text("category:harassment/threatening")
    wrap = page.locator(".media-wrap")
    image = wrap.locator("img")
    expect(wrap).to_have_class("media-wrap concealed")
    page.wait_for_function("() => document.querySelector('.media-wrap img').naturalWidth > 0")
    concealed = image.evaluate("e => getComputedStyle(e).filter")
    assert "blur" in concealed and "grayscale" in concealed
    page.screenshot(path=str(tmp_path / "task-blurred.png"), full_page=True)

    # Before the reveal the server sent only a small blurred preview, not the original.
    assert image.evaluate("e => e.naturalWidth") <= 64
    original_url = f"{base}/tasks/{task.task_id}/media/image-0?v=original"
    reveal_url = f"{base}/tasks/{task.task_id}/reveal"
    with (
        page.expect_response(original_url) as original,
        page.expect_response(reveal_url) as revealed,
    ):
        wrap.click()  # reveal on click
    assert revealed.value.status == 200
    assert original.value.headers["content-type"] == "image/png"  # then the page loads it
    assert image.evaluate("e => getComputedStyle(e).filter") == "none"
    page.wait_for_function("() => document.querySelector('.media-wrap img').naturalWidth > 64")
    page.screenshot(path=str(tmp_path / "task-revealed.png"), full_page=True)

    # Once the audio is revealed, a transcript time plays it from there.
    page.locator(".audio-reveal").click()
    page.wait_for_function("() => document.querySelector('audio').getAttribute('src')")
    lines.nth(2).locator("button.ts").click()
    page.wait_for_function("() => document.querySelector('audio').currentTime >= 2.9")

    page.keyboard.press("b")  # block, with the flagged categories pre-selected
    page.wait_for_url(f"{base}/queue?msg=final")
    expect(page.locator(".flash")).to_contain_text("final decision is published")

    async def final() -> decision_pb2.ModerationDecision:
        async for d in iter_decisions(
            kafka.bootstrap_servers, kafka=kafka, content_ids=[task.item.id], timeout_s=30
        ):
            return d
        raise AssertionError("no decision")

    decision = run_async(final())
    assert decision.action == taxonomy_pb2.ACTION_BLOCK
    assert decision.decided_by == "review" and decision.final
    assert decision.supersedes_decision_id == task.decision.decision_id
    assert "harassment/threatening" in decision.reasons[-1]

    # The admin's audit log shows the view, the reveal and the verdict.
    admin = browser.new_page()
    login(admin, base, "demo-admin")
    admin.goto(f"{base}/admin")
    audit = admin.locator("section[aria-labelledby=audit-h] table")
    for action in ("view", "reveal", "verdict", "claim"):
        expect(audit.locator("td", has_text=re.compile(f"^{action}$")).first).to_be_visible()
    # The lead view counts the reviewer's verdict and lists the decision with an appeal form.
    admin.goto(f"{base}/lead")
    expect(admin.locator("section[aria-labelledby=tp-h] tbody")).to_contain_text("demo-reviewer")
    expect(admin.locator("section[aria-labelledby=decided-h]")).to_contain_text(task.item.id)
    admin.screenshot(path=str(tmp_path / "lead.png"), full_page=True)
    # A reviewer cannot open the admin page, whatever the URL.
    response = page.goto(f"{base}/admin")
    assert response is not None and response.status == 403
    admin.close()
    page.close()
