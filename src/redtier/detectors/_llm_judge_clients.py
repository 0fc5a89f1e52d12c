"""Clients that send the LLM judge's rubric to a model: a catalog model or an HTTP endpoint.

A client returns the judge's answer text for each question, or raises
:class:`JudgeError` when the model gave none: a timeout, a connection failure,
an HTTP error status, a body that is not a chat completion, or a failed
generation. Reading a score from the text is the detector's job.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from redtier.backends import ChatRequest, GenerationConfig, ModelBackend
from redtier.catalog import load_catalog
from redtier.errors import ConfigError, RedtierError
from redtier.probes import LlmJudgeSettings
from redtier.settings import Settings

logger = logging.getLogger(__name__)

RETRY_BACKOFF_S = 0.5
"""Wait before the first retry of a failed request; each further retry waits this much longer."""
CATALOG_BATCH_SIZE = 8
"""Questions a catalog judge model answers in one generation batch."""


class JudgeError(RedtierError):
    """A judge request that failed: the endpoint or the judge model gave no answer."""


class JudgeClient(Protocol):
    """Sends the rubric and one question per output to a judge model."""

    def complete_many(self, system: str, questions: Sequence[str]) -> list[str]:
        """Return the judge's answer to each question, in order; raise ``JudgeError`` on failure."""
        ...

    def close(self) -> None:
        """Release the model or connections."""
        ...


class CatalogJudgeClient:
    """A catalog model as judge, loaded on first use through redtier's backends."""

    def __init__(self, settings: LlmJudgeSettings, backend: ModelBackend | None = None) -> None:
        """Check the model name now; load the model on the first request unless ``backend`` is given.

        Raises:
            UnknownNameError: ``settings.model`` is not in the catalog.
        """
        assert settings.model is not None
        self._settings = settings
        self._redtier_settings = _redtier_settings(settings)
        self._entry = load_catalog(self._redtier_settings.catalog_file).get(settings.model)
        self._backend = backend

    def complete_many(self, system: str, questions: Sequence[str]) -> list[str]:
        """Generate the judge's answers greedily, several questions per batch."""
        if self._backend is None:
            # Imported here because redtier.scan imports the detectors package.
            from redtier.scan import load_backend

            logger.info("Loading judge model %s", self._entry.name)
            self._backend = load_backend(
                self._entry, self._redtier_settings, sandbox=self._settings.sandbox
            )
        requests = [ChatRequest(prompt=question, system_prompt=system) for question in questions]
        config = GenerationConfig(
            max_new_tokens=self._settings.max_new_tokens, batch_size=CATALOG_BATCH_SIZE
        )
        answers = []
        for generation in self._backend.generate(requests, config):
            if generation.error is not None:
                raise JudgeError(
                    f"Judge model {self._entry.name} failed to answer: {generation.error}"
                )
            answers.append(generation.text)
        return answers

    def close(self) -> None:
        """Stop the judge model's worker, if it was started; the next question starts a new one."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class EndpointJudgeClient:
    """An OpenAI-compatible ``/chat/completions`` endpoint as judge, over httpx."""

    def __init__(
        self,
        settings: LlmJudgeSettings,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Read the API key from the variable that ``settings.api_key_env`` names.

        Raises:
            ConfigError: that variable is named but not set.
        """
        assert settings.endpoint is not None
        self._settings = settings
        self.url = settings.endpoint.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        key = _api_key(settings, os.environ if environ is None else environ)
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._transport = transport
        self._client: httpx.Client | None = None

    def complete_many(self, system: str, questions: Sequence[str]) -> list[str]:
        """Send one request per question, in order."""
        return [self.complete(system, question) for question in questions]

    def complete(self, system: str, question: str) -> str:
        """POST one chat request; retry timeouts, connection failures, HTTP 429 and 5xx."""
        body = {
            "model": self._settings.api_model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ],
            "temperature": 0,
            "max_tokens": self._settings.max_new_tokens,
        }
        tries = self._settings.retries + 1
        problem = ""
        for attempt in range(1, tries + 1):
            try:
                response = self._http().post(self.url, json=body)
            except httpx.TimeoutException:
                problem = (
                    f"The judge endpoint {self.url} did not answer within "
                    f"{self._settings.timeout_s:g} s ({attempt} of {tries} tries). Check that the "
                    "server is up, or raise --judge-timeout."
                )
            except httpx.TransportError as error:
                problem = (
                    f"Cannot reach the judge endpoint {self.url}: {error} ({attempt} of {tries} "
                    "tries). Check --judge-endpoint and that the server is running."
                )
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return _answer_text(self.url, response)
                problem = _status_problem(self.url, response)
            if attempt < tries:
                logger.warning("%s Retrying.", problem)
                time.sleep(RETRY_BACKOFF_S * attempt)
        raise JudgeError(problem)

    def close(self) -> None:
        """Close the HTTP connections; the next request opens new ones."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                headers=self._headers, timeout=self._settings.timeout_s, transport=self._transport
            )
        return self._client


def make_client(settings: LlmJudgeSettings) -> JudgeClient:
    """Return the client that ``settings`` describe: a catalog model or an endpoint."""
    if settings.model is not None:
        return CatalogJudgeClient(settings)
    return EndpointJudgeClient(settings)


def _redtier_settings(settings: LlmJudgeSettings) -> Settings:
    """Return the settings that locate a catalog judge's files, from its own fields or defaults."""
    defaults = Settings.resolve()
    return Settings(
        db_url=defaults.db_url,
        cache_dir=settings.cache_dir or defaults.cache_dir,
        catalog_file=settings.catalog_file or defaults.catalog_file,
    )


def _api_key(settings: LlmJudgeSettings, environ: Mapping[str, str]) -> str | None:
    if settings.api_key_env is None:
        return None
    key = environ.get(settings.api_key_env)
    if not key:
        raise ConfigError(
            f"Environment variable {settings.api_key_env} is not set, so the judge endpoint has no "
            f"API key. Export it (export {settings.api_key_env}=...), or leave out "
            "--judge-api-key-env for an endpoint without a key."
        )
    return key


def _status_problem(url: str, response: httpx.Response) -> str:
    snippet = " ".join(response.text.split())[:200] or "(empty body)"
    hint = {
        401: " Check the API key in the variable that --judge-api-key-env names.",
        403: " Check the API key in the variable that --judge-api-key-env names.",
        404: " Check that --judge-endpoint ends with the API's base path (often /v1) and that "
        "--judge-api-model names a model the server serves.",
        429: " The server is rate-limiting requests; try again later.",
    }.get(response.status_code, "")
    return f"The judge endpoint {url} returned HTTP {response.status_code}: {snippet}.{hint}"


def _answer_text(url: str, response: httpx.Response) -> str:
    """Return the message content of a chat completion, or raise ``JudgeError``."""
    if response.status_code >= 400:
        raise JudgeError(_status_problem(url, response))
    try:
        payload: Any = response.json()
        content = payload["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        snippet = " ".join(response.text.split())[:200] or "(empty body)"
        raise JudgeError(
            f"The judge endpoint {url} did not return a chat completion "
            f"(expected JSON with choices[0].message.content): {snippet}. Check that "
            "--judge-endpoint points at an OpenAI-compatible API."
        ) from None
    if content is None:
        return ""
    if not isinstance(content, str):
        raise JudgeError(
            f"The judge endpoint {url} returned message content of type "
            f"{type(content).__name__}, not text."
        )
    return content
