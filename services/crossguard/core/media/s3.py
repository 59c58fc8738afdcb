"""The S3 client (MinIO's Python SDK: any S3-compatible store, AWS S3 included), built from
MediaSettings with the fetch timeout on every connect and read, and its errors mapped to media
errors. One client per settings object: it is thread-safe and pools its connections."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.credentials.providers import (
    AWSConfigProvider,
    ChainedProvider,
    EnvAWSProvider,
    IamAwsProvider,
)
from minio.error import MinioException, S3Error
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from crossguard.core.media.errors import (
    MediaAccessDenied,
    MediaBadReference,
    MediaError,
    MediaNotFound,
    MediaTimeout,
    MediaUnavailable,
)
from crossguard.core.media.settings import MediaSettings

_NOT_FOUND = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "ResourceNotFound", "NotFound"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


@functools.lru_cache(maxsize=8)
def s3_client(settings: MediaSettings) -> Minio:
    endpoint = settings.s3_endpoint or "https://s3.amazonaws.com"
    url = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    timeout = settings.fetch_timeout_s
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout, read=timeout),
        # Connection failures and 5xx answers are retried once; a read that timed out is not
        # (it would double the wait past the fetch timeout).
        retries=urllib3.Retry(
            total=1, read=0, backoff_factor=0.1, status_forcelist=[500, 502, 503, 504]
        ),
        maxsize=16,
    )
    key = settings.s3_access_key_id.get_secret_value()
    return Minio(
        url.netloc,
        access_key=key or None,
        secret_key=settings.s3_secret_access_key.get_secret_value() or None,
        session_token=settings.s3_session_token.get_secret_value() or None,
        secure=url.scheme == "https",
        region=settings.s3_region or None,
        http_client=http,
        credentials=None
        if key
        else ChainedProvider([EnvAWSProvider(), AWSConfigProvider(), IamAwsProvider()]),
    )


def media_error(exc: Exception, where: str) -> MediaError:
    """The media error for an S3 client or transport failure."""
    if isinstance(exc, S3Error):
        if exc.code in _NOT_FOUND:
            return MediaNotFound(f"{where}: {exc.code}")
        if exc.code in _DENIED:
            return MediaAccessDenied(f"{where}: {exc.code}")
        return MediaUnavailable(f"{where}: {exc.code}")
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    # NewConnectionError (refused, unreachable) subclasses urllib3's ConnectTimeoutError.
    if isinstance(reason, Urllib3Timeout | TimeoutError) and not isinstance(
        reason, NewConnectionError
    ):
        return MediaTimeout(f"{where}: no answer within the fetch timeout")
    return MediaUnavailable(f"{where}: {type(reason).__name__}")


@contextmanager
def s3_errors(where: str) -> Iterator[None]:
    """Client and transport errors inside the block → media errors."""
    try:
        yield
    except MediaError:
        raise
    except (MinioException, HTTPError, OSError) as exc:
        raise media_error(exc, where) from exc
    except ValueError as exc:  # the client's own checks: bucket name, key
        raise MediaBadReference(f"{where}: {exc}") from None
