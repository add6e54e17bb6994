"""LLM backends: Ollama /api/chat, OpenAI-compatible /v1/chat/completions, embedded llama.cpp."""

from unwritten_pipeline.lib.llm.base import (
    ChatRequest,
    ChatResult,
    InvalidOutputError,
    InvalidRequestError,
    LLMBackend,
    LLMError,
    LLMUnavailableError,
    ModelNotAvailableError,
    TransientLLMError,
    TruncatedOutputError,
)

__all__ = [
    "ChatRequest",
    "ChatResult",
    "InvalidOutputError",
    "InvalidRequestError",
    "LLMBackend",
    "LLMError",
    "LLMUnavailableError",
    "ModelNotAvailableError",
    "TransientLLMError",
    "TruncatedOutputError",
]
