"""The Responses API: OpenAI's newer front door to the gateway (see docs/responses-api.md)."""
