"""The lifecycle shared by models that are one ONNX session from one model-repository entry
(crossguard.core.model_contract): load the entry (verified), open its session from the model
settings, read what the manifest declares, name the version; close drops the session."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from crossguard.core.errors import NotReady
from crossguard.core.model_repository import ModelEntry, ModelRepository
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings

if TYPE_CHECKING:
    import onnxruntime as ort


class OnnxEntryModel:
    """Base of a one-session model; subclasses set `name` and read their manifest in
    `_configure`."""

    name: str

    def __init__(
        self, repository: ModelRepository | None = None, settings: ModelSettings | None = None
    ) -> None:
        self.settings = settings or ModelSettings()
        self.repository = repository or ModelRepository(self.settings.model_repository)
        self.version = "unloaded"
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def model_infos(self) -> Sequence[tuple[str, str]]:
        return [(self.name, self.version)]

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            entry = self.repository.get(self.name)
            entry.verify()
            self._configure(entry)
            self._session = session_from_settings(entry.onnx_path, self.settings)
            self.version = entry.manifest.version

    def _configure(self, entry: ModelEntry) -> None:
        """Read what the entry's manifest declares (thresholds, weights)."""

    def ready(self) -> bool:
        return self._session is not None

    def session(self) -> ort.InferenceSession:
        """The loaded session, or NotReady."""
        session = self._session
        if session is None:
            raise NotReady(f"{self.name} is not loaded; call load() first")
        return session

    def close(self) -> None:
        with self._lock:
            self._session = None
            self.version = "unloaded"
