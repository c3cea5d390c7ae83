"""tunepipe: a self-hosted, OpenPipe-compatible LLM gateway, logger and fine-tuning platform."""

__version__ = "0.1.0"
