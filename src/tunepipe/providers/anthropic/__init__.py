"""Anthropic's Messages API as a gateway provider: wire translation in :mod:`.translate`,
transport in :mod:`.client`."""

from tunepipe.providers.anthropic.client import AnthropicProvider

__all__ = ["AnthropicProvider"]
