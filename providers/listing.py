"""A provider's model listing: `GET {base}/models`, read by that provider's own parser."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import aiohttp
from pydantic import SecretStr

from providers.fetch import RetryPolicy, get_json
from providers.model import ModelInfo

Parse = Callable[[object], list[ModelInfo]]


def bearer_headers(api_key: SecretStr | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if api_key is not None and api_key.get_secret_value():
        headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
    return headers


class ModelListing:
    """One ModelSource for every provider; only the parser and the headers differ."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy,
        parse: Parse,
        configured: bool,
        query: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.configured = configured
        self._session = session
        # `query` asks for more than the default listing (OpenRouter's output modalities).
        suffix = f"?{urlencode(query)}" if query else ""
        self._url = f"{base_url.rstrip('/')}/models{suffix}"
        self._headers = dict(headers)
        self._policy = policy
        self._parse = parse

    async def list_models(self) -> list[ModelInfo]:
        payload = await get_json(
            self._session, self._url, provider=self.name, headers=self._headers, policy=self._policy
        )
        return self._parse(payload)
