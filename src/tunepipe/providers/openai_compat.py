"""OpenAI's Chat Completions wire, spoken to OpenAI, Gemini's OpenAI endpoint, vLLM, Azure
OpenAI, or any compatible server.

Non-streaming answers are returned as the upstream's own bytes (parsed once for logging), so
nothing a provider adds is lost and the hot path does no re-encoding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tunepipe.errors import UpstreamError, UpstreamUnavailable
from tunepipe.providers.base import Completion
from tunepipe.providers.http import guarded, open_response, post_json
from tunepipe.providers.sse import aiter_events


class OpenAICompatProvider:
    """One upstream endpoint. ``azure_api_version`` switches to Azure's deployment URLs and
    ``api-key`` header."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str | None,
        name: str = "OpenAI",
        azure_api_version: str | None = None,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.name = name
        self._azure_api_version = azure_api_version

    def _url_and_headers(self, model: str) -> tuple[str, dict[str, str]]:
        headers = {"Content-Type": "application/json"}
        if self._azure_api_version is not None:
            url = (
                f"{self._base_url}/openai/deployments/{model}/chat/completions"
                f"?api-version={self._azure_api_version}"
            )
            if self._api_key:
                headers["api-key"] = self._api_key
        else:
            url = f"{self._base_url}/chat/completions"
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
        return url, headers

    async def complete(self, body: dict[str, Any]) -> Completion:
        url, headers = self._url_and_headers(body["model"])
        raw = await post_json(self._session, url, orjson.dumps(body), headers, self.name)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(f"{self.name} returned a body that is not JSON") from exc
        if not isinstance(data, dict) or "choices" not in data:
            raise UpstreamUnavailable(f"{self.name} returned a body that is not a chat completion")
        return Completion(data=data, raw=raw)

    async def open_stream(self, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        url, headers = self._url_and_headers(body["model"])
        headers["Accept"] = "text/event-stream"
        resp = await open_response(self._session, url, orjson.dumps(body), headers, self.name)
        return guarded(self._chunks(resp), self.name, resp)

    async def _chunks(self, resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
        async for event in aiter_events(resp):
            if event.data == "[DONE]":
                return
            if not event.data:
                continue
            try:
                chunk = orjson.loads(event.data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamUnavailable(f"{self.name} sent an event that is not JSON") from exc
            if isinstance(chunk, dict) and chunk.get("error") is not None:
                err = chunk["error"]
                message = err.get("message") if isinstance(err, dict) else str(err)
                raise UpstreamError(f"{self.name} failed mid-stream: {message}")
            yield chunk

    # ------------------------------------------------------------------ other OpenAI endpoints

    def _endpoint(self, path: str, model: str) -> tuple[str, dict[str, str]]:
        """URL and headers of ``path`` (``embeddings``, ``completions``) for ``model``."""
        headers = {"Content-Type": "application/json"}
        if self._azure_api_version is not None:
            url = f"{self._base_url}/openai/deployments/{model}/{path}?api-version={self._azure_api_version}"
            if self._api_key:
                headers["api-key"] = self._api_key
        else:
            url = f"{self._base_url}/{path}"
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
        return url, headers

    async def post(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """POST ``body`` to the upstream's ``path``; its JSON answer, parsed, and its own bytes."""
        url, headers = self._endpoint(path, str(body.get("model", "")))
        raw = await post_json(self._session, url, orjson.dumps(body), headers, self.name)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamUnavailable(f"{self.name} returned a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise UpstreamUnavailable(f"{self.name} returned a body that is not a JSON object")
        return data, raw

    async def open_events(self, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Start a streaming POST to ``path``: its JSON events until ``[DONE]`` (failures before
        the first event raise here)."""
        url, headers = self._endpoint(path, str(body.get("model", "")))
        headers["Accept"] = "text/event-stream"
        resp = await open_response(self._session, url, orjson.dumps(body), headers, self.name)
        return guarded(self._chunks(resp), self.name, resp)
