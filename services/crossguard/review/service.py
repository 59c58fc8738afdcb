"""The review service process: migrate the store, then serve the web UI (uvicorn) while
consuming review tasks, publishing the outbox and sweeping retention, all on one event loop.

Prints `PORT <n>` once the web server listens and the consumer has joined its group (the
readiness line `crossguard up` and the tests wait for); SIGTERM drains: uvicorn stops
accepting, the outbox is flushed once more, the consumer leaves its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable

import uvicorn

from crossguard.core.logging_setup import configure_logging
from crossguard.core.media import MediaSettings
from crossguard.core.settings import KafkaSettings
from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry
from crossguard.review.auth import Accounts, bootstrap_users
from crossguard.review.db import make_engine, migrate
from crossguard.review.kafka_io import OutboxPublisher, TaskConsumer
from crossguard.review.settings import ReviewSettings
from crossguard.review.stats import LeadStats
from crossguard.review.store import ReviewStore
from crossguard.review.web import WebContext, create_app

log = logging.getLogger(__name__)

SESSION_COOKIE = "crossguard_review"


def cookie_name(secure: bool) -> str:
    # __Host- binds the cookie to this host and path / and requires Secure.
    return f"__Host-{SESSION_COOKIE}" if secure else SESSION_COOKIE


class LoopTaskEnded(RuntimeError):
    """A background loop (consumer, outbox, retention) ended while the web server ran: the
    process exits non-zero so its supervisor restarts it, rather than serving without it."""


async def retention_loop(store: ReviewStore, interval_s: float) -> None:
    while True:
        try:
            purged = await asyncio.to_thread(store.purge_expired)
        except Exception:
            # A database error must not end the sweep for the process's life: try again later.
            log.exception("retention sweep failed; retrying next interval")
        else:
            if purged:
                log.info("retention purged task content", extra={"tasks": purged})
        await asyncio.sleep(interval_s)


async def supervise(
    web: asyncio.Task[None], loop_tasks: list[asyncio.Task[None]], stop_web: Callable[[], None]
) -> None:
    """Wait until the web server or any loop task ends. The loops never end on their own, so
    one that does (with an error or not) stops the web server and raises LoopTaskEnded."""
    done, _ = await asyncio.wait([web, *loop_tasks], return_when=asyncio.FIRST_COMPLETED)
    ended = [t for t in loop_tasks if t in done]
    if not ended:
        web.result()
        return
    task = ended[0]
    error = None if task.cancelled() else task.exception()
    log.error(
        "review loop task ended; stopping the service",
        extra={"task": task.get_name(), "reason": repr(error)[:300]},
        exc_info=error,
    )
    stop_web()
    with contextlib.suppress(Exception):
        await web
    raise LoopTaskEnded(f"the {task.get_name()} loop ended: {error!r}") from error


async def serve(settings: ReviewSettings, kafka: KafkaSettings) -> None:
    engine = make_engine(settings.database_url.get_secret_value())
    await asyncio.to_thread(migrate, engine)
    store = ReviewStore(engine, settings)
    accounts = Accounts(store)
    created = await asyncio.to_thread(
        bootstrap_users, accounts, settings.bootstrap_password.get_secret_value()
    )
    if created:
        log.info("created bootstrap accounts", extra={"users": created})
    publisher = OutboxPublisher(store, kafka, settings.publish_interval_seconds)
    consumer = TaskConsumer(store, kafka, settings.consumer_group)
    app = create_app(
        WebContext(
            store=store,
            accounts=accounts,
            cookie_name=cookie_name(settings.cookie_secure),
            cookie_secure=settings.cookie_secure,
            on_final=publisher.wake.set,
            stats=LeadStats(engine, store.clock),
            public_url=settings.public_url,
            media=MediaSettings(),
        )
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # URLs carry task ids only, but keep request logs out by default
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    loop_tasks = [
        asyncio.create_task(publisher.run(), name="outbox"),
        asyncio.create_task(consumer.run(), name="consumer"),
        asyncio.create_task(
            retention_loop(store, settings.retention_interval_seconds), name="retention"
        ),
    ]
    web = asyncio.create_task(server.serve(), name="web")
    try:
        while not server.started:
            if web.done():
                web.result()
                return
            await asyncio.sleep(0.05)
        await asyncio.wait(
            [asyncio.ensure_future(consumer.started.wait()), web, *loop_tasks],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for task in loop_tasks:
            if task.done():
                task.result()  # a failed start: raise it
        port = server.servers[0].sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        log.info("review service ready", extra={"port": port})

        def stop_web() -> None:
            server.should_exit = True

        await supervise(web, loop_tasks, stop_web)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.flush(), 5)
        for task in loop_tasks:
            task.cancel()
        for task in loop_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        engine.dispose()


def main() -> None:
    settings = ReviewSettings()
    configure_logging(settings.log_level, service="review")
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        print("CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS is required", file=sys.stderr)
        sys.exit(2)
    setup_telemetry("crossguard-review")
    try:
        asyncio.run(serve(settings, kafka))
    except LoopTaskEnded as exc:
        print(str(exc), file=sys.stderr)
        sys.exit(1)
    finally:
        shutdown_telemetry()
