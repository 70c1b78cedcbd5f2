"""The seam between the catalog and each provider's model listing."""

from __future__ import annotations

from typing import Protocol

from providers.model import ModelInfo


class ModelSource(Protocol):
    """Lists one provider's models. Raises a ProviderError when it cannot."""

    @property
    def name(self) -> str: ...

    @property
    def configured(self) -> bool:
        """True when the server has credentials for this provider."""
        ...

    async def list_models(self) -> list[ModelInfo]: ...
