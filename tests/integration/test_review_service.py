"""The review service as a process (`python -m crossguard.review`) on a real PostgreSQL and
the real broker: authentication and authorization on every route, CSRF, cookie flags, and a
verdict that survives a SIGKILL of the service and still becomes exactly one final decision."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy

from crossguard.core.processes import ManagedProcess
from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import Topics
from crossguard.pipeline.io import iter_records, publish_raw
from crossguard.review.schema import verdicts
from crossguard.v1 import decision_pb2, review_pb2

from .conftest import SERVICE_STARTUP_S, DatabaseFactory, SpawnFactory, kafka_env
from .review_tasks import make_task

pytestmark = pytest.mark.integration

PASSWORD = "demo-password-1"
ReviewFactory = Callable[..., ManagedProcess]


@pytest.fixture
def start_review(spawn: SpawnFactory, kafka: KafkaSettings) -> ReviewFactory:
    def start(database_url: str, log_level: str = "WARNING") -> ManagedProcess:
        return spawn(
            "review",
            "crossguard.review",
            {
                **kafka_env(kafka),
                "CROSSGUARD_REVIEW_DATABASE_URL": database_url,
                "CROSSGUARD_REVIEW_PORT": "0",
                "CROSSGUARD_REVIEW_BOOTSTRAP_PASSWORD": PASSWORD,
                "CROSSGUARD_REVIEW_LOG_LEVEL": log_level,
            },
            ready="PORT",
            timeout=SERVICE_STARTUP_S,
        )

    return start


class Browserless:
    """A logged-in HTTP client that carries the session cookie by hand (it is Secure, so
    httpx would not send it over plain HTTP to 127.0.0.1)."""

    def __init__(self, base: str, username: str, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
        form = self.http.get("/login")
        login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert login_csrf is not None
        resp = self.http.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": login_csrf[1]},
            headers={
                "Cookie": f"crossguard_review_login={form.cookies['crossguard_review_login']}"
            },
        )
        assert resp.status_code == 303, resp.text
        self.set_cookie = resp.headers["set-cookie"]
        name, value = self.set_cookie.split(";", 1)[0].split("=", 1)
        self.cookie = f"{name}={value}"
        self.csrf = self.get("/api/me").json()["csrf_token"]

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path, headers={"Cookie": self.cookie})

    def post(self, path: str, csrf: str | None = "session", **kw: Any) -> httpx.Response:
        headers = {"Cookie": self.cookie, **kw.pop("headers", {})}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf if csrf == "session" else csrf
        return self.http.post(path, headers=headers, **kw)


def test_every_route_is_authenticated_and_authorized(
    postgres_database: DatabaseFactory, start_review: ReviewFactory
) -> None:
    proc = start_review(postgres_database())
    base = f"http://127.0.0.1:{proc.port}"
    anon = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    assert anon.get("/healthz").status_code == 200
    assert anon.get("/readyz").status_code == 200
    for path in ("/", "/queue", "/lead", "/admin", "/tasks/x"):
        resp = anon.get(path)
        assert resp.status_code == 303 and resp.headers["location"] == "/login", path
    for path in ("/api/me", "/api/queue", "/api/admin/users"):
        assert anon.get(path).status_code == 401, path
    for path in ("/claim", "/api/claim", "/tasks/x/verdict", "/admin/users", "/appeals"):
        assert anon.post(path).status_code == 401, path
    # A forged session cookie is no session.
    forged = {"Cookie": "__Host-crossguard_review=forged"}
    assert anon.get("/api/me", headers=forged).status_code == 401

    # Login: CSRF-protected, wrong password refused, cookie flags.
    form = anon.get("/login")
    assert (
        anon.post(
            "/login", data={"username": "demo-admin", "password": PASSWORD, "csrf_token": "forged"}
        ).status_code
        == 403
    )
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf is not None
    wrong = anon.post(
        "/login",
        data={"username": "demo-admin", "password": "wrong-pass", "csrf_token": login_csrf[1]},
        headers={"Cookie": f"crossguard_review_login={form.cookies['crossguard_review_login']}"},
    )
    assert wrong.status_code == 401
    reviewer = Browserless(base, "demo-reviewer")
    flags = reviewer.set_cookie.lower()
    assert reviewer.set_cookie.startswith("__Host-crossguard_review=")
    assert "httponly" in flags and "secure" in flags and "samesite=strict" in flags
    page = reviewer.get("/queue")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"

    # Roles, enforced on the server whatever the UI shows.
    for path in ("/admin", "/lead", "/api/admin/users"):
        assert reviewer.get(path).status_code == 403, path
    assert (
        reviewer.post(
            "/admin/users", data={"username": "x", "password": "y" * 9, "role": "admin"}
        ).status_code
        == 403
    )
    assert reviewer.post("/appeals", data={"content_id": "c-1"}).status_code == 403
    lead = Browserless(base, "demo-lead")
    assert lead.get("/lead").status_code == 200
    assert lead.get("/admin").status_code == 403
    admin = Browserless(base, "demo-admin")
    assert admin.get("/admin").status_code == 200
    assert admin.get("/api/admin/users").json()[0]["username"].startswith("demo-")

    # CSRF: a valid session without (or with a forged) token changes nothing.
    assert reviewer.post("/api/claim", csrf=None).status_code == 403
    assert reviewer.post("/api/claim", csrf="forged-token").status_code == 403
    assert reviewer.post("/claim", csrf=None, data={"csrf_token": "forged"}).status_code == 403
    assert (
        admin.post(
            "/admin/users",
            csrf="forged",
            data={"username": "evil", "password": "p" * 9, "role": "admin"},
        ).status_code
        == 403
    )
    assert "evil" not in admin.get("/admin").text
    # A cross-site form post carries the browser's Origin: refused even with the token.
    evil = {"Origin": "https://evil.example"}
    assert reviewer.post("/api/claim", headers=evil).status_code == 403
    assert reviewer.post("/api/claim").json() == {"task_id": None}  # the real token works

    # Logout ends the session server-side.
    assert reviewer.post("/logout").status_code == 303
    assert reviewer.get("/api/me").status_code == 401


def _wait_for_task(client: Browserless, timeout_s: float = 60) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        task_id = client.post("/api/claim").json()["task_id"]
        if task_id:
            return str(task_id)
        time.sleep(0.2)
    raise TimeoutError("the review task never reached the queue")


def test_verdict_survives_sigkill_and_becomes_one_final_decision(
    postgres_database: DatabaseFactory,
    start_review: ReviewFactory,
    kafka: KafkaSettings,
    tmp_path: Path,
) -> None:
    url = postgres_database()
    task = make_task("kill-1", scores={"violence": (0.6, 2)})
    topics = Topics.from_settings(kafka)
    # Published before the service starts: its first poll must not drop them.
    asyncio.run(
        publish_raw(
            kafka.bootstrap_servers,
            [(b"c-kill-1", task.SerializeToString(), [])] * 2,  # a redelivery: stored once
            topic=topics.review,
            kafka=kafka,
        )
    )
    proc = start_review(url, "INFO")
    reviewer = Browserless(f"http://127.0.0.1:{proc.port}", "demo-reviewer")
    task_id = _wait_for_task(reviewer)
    assert task_id == task.task_id
    resp = reviewer.post(
        f"/api/tasks/{task_id}/verdict", json={"action": "block", "categories": ["violence"]}
    )
    assert resp.json() == {"final": True, "action": "block", "to_lead": False}
    assert proc.kill() is not None  # SIGKILL right after the answer: no drain, no flush

    proc = start_review(url, "INFO")
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(sqlalchemy.select(verdicts.c.task_id, verdicts.c.action)).all()
    engine.dispose()
    assert [(r.task_id, r.action) for r in rows] == [(task_id, "block")]

    async def finals() -> list[decision_pb2.ModerationDecision]:
        out = []
        async for record in iter_records(
            kafka.bootstrap_servers, topics.decisions, kafka=kafka, idle_timeout_s=2.0
        ):
            out.append(decision_pb2.ModerationDecision.FromString(record.value or b""))
        return out

    decisions = asyncio.run(finals())
    assert decisions, "the final decision was lost"
    # At-least-once: a re-send after the crash repeats the same record, never a second one.
    assert {d.decision_id for d in decisions} == {decisions[0].decision_id}
    final = decisions[0]
    assert final.content_id == "c-kill-1" and final.decided_by == "review" and final.final
    assert final.supersedes_decision_id == "auto-kill-1"
    feedback = asyncio.run(_feedback(kafka))
    assert feedback and feedback[0].task_id == task_id
    # The restarted service knows the task is closed: nothing to claim.
    again = Browserless(f"http://127.0.0.1:{proc.port}", "demo-reviewer")
    assert again.post("/api/claim").json() == {"task_id": None}
    # The logs (INFO) name ids, never the content.
    logs = (tmp_path / "review.log").read_text()
    assert task.task_id in logs and "review task stored" in logs
    assert task.item.parts[0].text not in logs


async def _feedback(kafka: KafkaSettings) -> list[review_pb2.ReviewFeedback]:
    out = []
    async for record in iter_records(
        kafka.bootstrap_servers,
        Topics.from_settings(kafka).feedback,
        kafka=kafka,
        idle_timeout_s=1.5,
    ):
        out.append(review_pb2.ReviewFeedback.FromString(record.value or b""))
    return out
