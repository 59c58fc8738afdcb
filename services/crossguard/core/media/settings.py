"""Media limits and stores (CROSSGUARD_MEDIA_*): shared by the pipeline (which checks
references) and every classifier that reads media (read_media), so both apply the same limits."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from crossguard.core.settings import CrossguardSettings


class MediaSettings(CrossguardSettings):
    """Reading media by reference (claim-check) and the store that `crossguard moderate` and
    the demo put local files into; docs/media.md."""

    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_MEDIA_", frozen=True, extra="ignore")

    max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1,
        description="CROSSGUARD_MEDIA_MAX_BYTES: largest media object read (declared size, "
        "stored size and bytes read are all checked against it).",
    )
    fetch_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="CROSSGUARD_MEDIA_FETCH_TIMEOUT_S: time for one fetch, connect to last "
        "byte (each network read also waits at most this long). Keep it below the policy's "
        "deadline_ms for the modality, or the pipeline's deadline fires first and the signal "
        "is missing instead of the item going to the dead-letter topic.",
    )
    allowed_schemes: str = Field(
        default="file,s3",
        description="CROSSGUARD_MEDIA_ALLOWED_SCHEMES: comma-separated URI schemes accepted "
        "(file, s3). Production: 's3' only.",
    )
    file_root: Path = Field(
        default=Path(".crossguard/media"),
        description="CROSSGUARD_MEDIA_FILE_ROOT: directory that file:// references must lie "
        "in (after resolving symlinks); anything outside is refused. Also the embedded "
        "store's directory. Relative paths are from the working directory.",
    )
    store_uri: str = Field(
        default="",
        description="CROSSGUARD_MEDIA_STORE_URI: where media is put to get a reference "
        "(the CLI's local files; inline media of escalated items for review tasks): "
        "empty = a file store in CROSSGUARD_MEDIA_FILE_ROOT, or s3://bucket/prefix.",
    )
    s3_endpoint: str = Field(
        default="",
        description="CROSSGUARD_MEDIA_S3_ENDPOINT: S3 API URL, e.g. https://s3.eu-west-1."
        "amazonaws.com or http://minio.storage:9000; empty = https://s3.amazonaws.com.",
    )
    s3_region: str = Field(
        default="", description="CROSSGUARD_MEDIA_S3_REGION: bucket region (empty: discovered)."
    )
    s3_access_key_id: SecretStr = Field(
        default=SecretStr(""),
        description="CROSSGUARD_MEDIA_S3_ACCESS_KEY_ID: secret; empty = the AWS_* environment "
        "variables, then the instance/pod role (IRSA).",
    )
    s3_secret_access_key: SecretStr = Field(
        default=SecretStr(""),
        description="CROSSGUARD_MEDIA_S3_SECRET_ACCESS_KEY: secret; never logged.",
    )
    s3_session_token: SecretStr = Field(
        default=SecretStr(""),
        description="CROSSGUARD_MEDIA_S3_SESSION_TOKEN: secret; for temporary credentials.",
    )

    # Plain properties, not cached: model_copy(update=...) would carry a cached value over.
    @property
    def schemes(self) -> frozenset[str]:
        return frozenset(s.strip().lower() for s in self.allowed_schemes.split(",") if s.strip())

    @property
    def root(self) -> Path:
        """file_root made absolute without touching the file system (for pure checks)."""
        return Path(os.path.abspath(self.file_root))
