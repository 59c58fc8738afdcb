"""A bounded pool of decoder processes (pebble's ProcessPool).

Processes, not threads: a decoder past its time limit is killed and its worker replaced (a
thread cannot be stopped), and a decoder that crashes (a fault in a C library) takes down one
worker, not the service. At most `workers` images decode at once; the others wait their turn,
so one bad image ties up one worker for at most the time limit and never stalls a batch.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import TimeoutError as FutureTimeout

from pebble import ProcessExpired, ProcessPool

from crossguard.core.errors import NotReady
from crossguard.vision.decode import (
    DecodedImage,
    DecodeTimeout,
    ImageDecodeError,
    decode_image,
)
from crossguard.vision.settings import DecodeLimits


class DecodePool:
    def __init__(self, limits: DecodeLimits, *, workers: int, timeout_seconds: float) -> None:
        self.limits = limits
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self._pool: ProcessPool | None = None

    def start(self) -> None:
        if self._pool is None:
            # spawn: the workers start clean instead of forking a process that runs gRPC and
            # onnxruntime threads.
            self._pool = ProcessPool(
                max_workers=self.workers, context=multiprocessing.get_context("spawn")
            )

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            pool.join()

    async def decode(self, data: bytes, mime_type: str) -> DecodedImage:
        """Decode in a worker; raises the decoder's domain errors, DecodeTimeout when it ran
        past the limit, ImageDecodeError when the worker died."""
        if self._pool is None:
            raise NotReady("decode pool is not started")
        future = self._pool.schedule(
            decode_image, args=(data, mime_type, self.limits), timeout=self.timeout_seconds
        )
        try:
            return await asyncio.wrap_future(future)
        except FutureTimeout:
            raise DecodeTimeout(
                f"decoding took longer than {self.timeout_seconds:g}s and was stopped "
                "(CROSSGUARD_VISION_DECODE_TIMEOUT_SECONDS)"
            ) from None
        except ProcessExpired as exc:
            raise ImageDecodeError(
                f"the decoder process died on this image (exit code {exc.exitcode})"
            ) from None
        except asyncio.CancelledError:
            future.cancel()  # type: ignore[no-untyped-call]  # pebble stops a started worker
            raise
