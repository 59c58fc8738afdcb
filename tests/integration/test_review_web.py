"""The review web app in process (FastAPI's TestClient over a real SQLite store, real media
files): the JSON API's answers to malformed bodies, media served as a server-side blurred
preview until the reviewer reveals the task (every fetch audited), and failed logins that
never write what was typed into the audit log."""

from __future__ import annotations

import hashlib
import io
import re
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from PIL import Image

from crossguard.core.media import MediaSettings
from crossguard.review.auth import Accounts
from crossguard.review.db import make_engine, migrate
from crossguard.review.schema import audit_log
from crossguard.review.settings import ReviewSettings
from crossguard.review.stats import LeadStats
from crossguard.review.store import ReviewStore
from crossguard.review.web import WebContext, create_app
from crossguard.v1 import content_pb2

from .review_tasks import make_task

pytestmark = pytest.mark.integration

PASSWORD = "correct horse"


class App:
    def __init__(self, tmp_path: Path) -> None:
        self.media_dir = tmp_path / "media"
        self.media_dir.mkdir()
        self.engine = make_engine(f"sqlite:///{tmp_path}/review.db")
        migrate(self.engine)
        self.store = ReviewStore(self.engine, ReviewSettings())
        self.accounts = Accounts(self.store, PasswordHasher(time_cost=1, memory_cost=1024))
        for name, role in (("ann", "reviewer"), ("lee", "lead")):
            self.accounts.create_user(name, PASSWORD, role)
        self.app = create_app(
            WebContext(
                store=self.store,
                accounts=self.accounts,
                cookie_name="crossguard_review",
                cookie_secure=False,
                on_final=lambda: None,
                stats=LeadStats(self.engine, self.store.clock),
                media=MediaSettings(file_root=self.media_dir),
            )
        )

    def client(self, username: str, password: str = PASSWORD) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        resp = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token[1]}
        )
        if resp.status_code == 303:
            client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
        return client

    def audit(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sqlalchemy.select(
                        audit_log.c.actor,
                        audit_log.c.action,
                        audit_log.c.task_id,
                        audit_log.c.detail,
                    ).order_by(audit_log.c.id)
                ).all()
            )


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[[], App]]:
    apps: list[App] = []

    def make() -> App:
        apps.append(App(tmp_path))
        return apps[-1]

    yield make
    for app in apps:
        app.engine.dispose()


def test_json_verdict_answers_malformed_bodies_with_400(make_app: Callable[[], App]) -> None:
    app = make_app()
    app.store.ingest(make_task(1))
    ann = app.client("ann")
    task_id = ann.post("/api/claim").json()["task_id"]
    url = f"/api/tasks/{task_id}/verdict"
    bad = {
        "not json": {"content": b"{not json"},
        "not utf-8": {"content": b'{"action": "\xff"}'},
        "not an object": {"json": ["block"]},
        "categories a number": {"json": {"action": "block", "categories": 5}},
        "categories a string": {"json": {"action": "block", "categories": "harassment"}},
        "unknown category": {"json": {"action": "block", "categories": ["nonsense"]}},
        "action a number": {"json": {"action": 5}},
        "note a list": {"json": {"action": "allow", "note": ["x"]}},
    }
    for case, body in bad.items():
        resp = ann.post(url, **body)  # type: ignore[arg-type]
        assert resp.status_code == 400, (case, resp.status_code, resp.text)
        assert resp.json()["error"], case
    assert "list of category names" in ann.post(url, **bad["categories a string"]).text  # type: ignore[arg-type]
    ok = ann.post(url, json={"action": "block", "categories": ["harassment"]})
    assert ok.json() == {"final": True, "action": "block", "to_lead": False}


def _png() -> bytes:
    image = Image.new("RGB", (320, 160))
    for x in range(320):
        for y in range(160):
            image.putpixel((x, y), (x % 256, (y * 3) % 256, 200 if (x // 16 + y // 16) % 2 else 20))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _wav(path: Path) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)


def test_media_is_a_blurred_preview_until_revealed_and_every_fetch_is_audited(
    make_app: Callable[[], App],
) -> None:
    app = make_app()
    original = _png()
    (app.media_dir / "post.png").write_bytes(original)
    _wav(app.media_dir / "clip.wav")
    task = make_task(2, media_uri=(app.media_dir / "post.png").as_uri())
    task.item.parts[1].media.sha256 = hashlib.sha256(original).hexdigest()
    task.item.parts[1].media.size = len(original)
    clip = app.media_dir / "clip.wav"
    task.item.parts.append(
        content_pb2.ContentPart(
            part_id="audio-0",
            media=content_pb2.Media(
                mime_type="audio/wav",
                uri=clip.as_uri(),
                sha256=hashlib.sha256(clip.read_bytes()).hexdigest(),
                size=clip.stat().st_size,
            ),
        )
    )
    app.store.ingest(task)
    ann, lee = app.client("ann"), app.client("lee")
    assert ann.post("/api/claim").json()["task_id"] == task.task_id
    image_url = f"/tasks/{task.task_id}/media/image-0"
    audio_url = f"/tasks/{task.task_id}/media/audio-0"

    page = ann.get(f"/tasks/{task.task_id}")
    assert "media-wrap concealed" in page.text and f'data-src="{audio_url}"' in page.text
    preview = ann.get(image_url)
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/jpeg"
    assert original not in preview.content
    shown = Image.open(io.BytesIO(preview.content))
    assert shown.mode == "L" and max(shown.size) <= ReviewSettings().preview_max_side
    assert ann.get(audio_url).status_code == 403  # no preview of audio: reveal first

    assert ann.post(f"/tasks/{task.task_id}/reveal").status_code == 200
    revealed = ann.get(image_url + "?v=original")
    assert revealed.content == original and revealed.headers["content-type"] == "image/png"
    assert ann.get(audio_url).headers["content-type"] == "audio/wav"
    assert "media-wrap concealed" not in ann.get(f"/tasks/{task.task_id}").text
    # A reveal is one reviewer's: the lead still gets the preview until they reveal.
    assert lee.get(image_url).headers["content-type"] == "image/jpeg"
    # A reviewer whose preference is no blur sees originals without a per-task reveal.
    app.accounts.set_reveal_preference(app.accounts.list_users()[1], True)  # lee
    assert app.client("lee").get(image_url).content == original

    fetches = [(r.actor, r.task_id, r.detail) for r in app.audit() if r.action == "media"]
    t = task.task_id
    assert fetches == [
        ("ann", t, "part=image-0 preview"),
        ("ann", t, "part=audio-0 preview"),
        ("ann", t, "part=image-0 original"),
        ("ann", t, "part=audio-0 original"),
        ("lee", t, "part=image-0 preview"),
        ("lee", t, "part=image-0 original"),
    ]


def test_failed_logins_never_record_what_was_typed(make_app: Callable[[], App]) -> None:
    app = make_app()
    # A password typed into the username field, then a known user with a wrong password.
    typed = "s3cret-pass-word"
    assert app.client(typed, "whatever-1").get("/api/me").status_code == 401
    assert app.client("ann", "wrong-password").get("/api/me").status_code == 401
    failed = [r.actor for r in app.audit() if r.action == "login_failed"]
    assert failed[1] == "ann"
    assert failed[0].startswith("unknown user ") and typed not in failed[0]
    # The same typed name gets the same tag, so repeated attempts still group together.
    app.client(typed, "whatever-2")
    assert [r.actor for r in app.audit() if r.action == "login_failed"][2] == failed[0]
    assert all(typed not in f"{r.actor} {r.detail}" for r in app.audit())
