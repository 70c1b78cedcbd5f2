"""A stand-in for OpenRouter: the same `GET /models` and `POST /chat/completions`, no network.

It answers with deterministic text (from the seed, the model and the prompt), streams it
the way OpenRouter does (`: OPENROUTER PROCESSING` comments, reasoning deltas, tool-call
fragments, usage with `cost` in the last chunk, `[DONE]`) and fails on demand, so the
gateway can be tried without keys, load-tested (`bench/`) and fault-tested against it.

Failures come from `error_rate` (random, from the seed) or from the request itself: an
`X-Simulate` header or `[simulate ...]` in the last user message, holding directives
such as `error=429 retry-after=2 times=1`, `error=midstream after=3` or `tokens=5`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

NAME = "simulator"
PREFIXES = ("", "/api/v1")
MAX_BODY_BYTES = 1024 * 1024
MAX_TOKENS = 4096
MAX_MESSAGES = 1000
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
KEEPALIVE_EVERY = 2.0
# Requests told to fail only their first `times` tries are remembered, at most this many.
_REMEMBERED = 1024
_DIRECTIVE = re.compile(r"\[simulate ([^\]]{0,200})\]")
_HTTP_ERRORS = {
    429: "Rate limit exceeded: simulated",
    500: "Internal Server Error (simulated)",
    502: "Provider returned error (simulated)",
    503: "No instances available (simulated)",
}
_RANDOM_FAILURES = ("429", "500", "502", "503", "midstream")
# fmt: off
_WORDS = (
    "pasta", "simulated", "answer", "gateway", "token", "stream", "model", "provider",
    "request", "reply", "quick", "brown", "sauce", "noodle", "basil", "tomato", "garlic",
    "olive", "cheese", "fresh", "dough", "simmer", "boil", "serve", "plate", "fork",
    "kitchen", "recipe", "taste", "salt", "pepper", "oven", "warm", "bright", "calm",
)
# fmt: on

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulator answers; times in seconds."""

    tokens: int = 50
    token_delay: float = 0.02
    latency: float = 0.0
    error_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.tokens <= MAX_TOKENS:
            raise ValueError(f"tokens must be between 0 and {MAX_TOKENS}")
        if self.token_delay < 0 or self.latency < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= self.error_rate <= 1:
            raise ValueError("error_rate must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class SimulatedModel:
    id: str
    name: str
    description: str
    context_length: int
    pricing: Mapping[str, str]
    supported_parameters: tuple[str, ...]
    input_modalities: tuple[str, ...] = ("text",)
    reasoning: bool = False

    def price(self, key: str) -> Decimal:
        return Decimal(self.pricing.get(key, "0"))

    def supports(self, parameter: str) -> bool:
        return parameter in self.supported_parameters

    def listing(self) -> dict[str, Any]:
        """This model as OpenRouter's `GET /models` lists one."""
        modality = "+".join(self.input_modalities) + "->text"
        return {
            "id": self.id,
            "canonical_slug": self.id,
            "name": self.name,
            "created": 1767225600,
            "description": self.description,
            "context_length": self.context_length,
            "architecture": {
                "modality": modality,
                "input_modalities": list(self.input_modalities),
                "output_modalities": ["text"],
                "tokenizer": "Other",
                "instruct_type": None,
            },
            "pricing": dict(self.pricing),
            "top_provider": {
                "context_length": self.context_length,
                "max_completion_tokens": MAX_TOKENS,
                "is_moderated": False,
            },
            "per_request_limits": None,
            "supported_parameters": list(self.supported_parameters),
        }


_BASIC = ("max_tokens", "temperature", "top_p", "stop", "seed")
_TOOLS = ("tools", "tool_choice")
_STRUCTURED = ("response_format", "structured_outputs")
_DESCRIPTION = "Answers with generated words, not a language model; no network needed."

MODELS: tuple[SimulatedModel, ...] = (
    SimulatedModel(
        id="sim/chat",
        name="Simulator: Chat (simulated)",
        description=f"A priced text model with tool calls. {_DESCRIPTION}",
        context_length=32768,
        pricing={
            "prompt": "0.0000005",
            "completion": "0.0000015",
            "request": "0",
            "image": "0",
            "input_cache_read": "0.00000005",
        },
        supported_parameters=(*_BASIC, *_TOOLS),
    ),
    SimulatedModel(
        id="sim/chat:free",
        name="Simulator: Chat (free) (simulated)",
        description=f"A free text model. {_DESCRIPTION}",
        context_length=8192,
        pricing={"prompt": "0", "completion": "0", "request": "0", "image": "0"},
        supported_parameters=_BASIC,
    ),
    SimulatedModel(
        id="sim/vision",
        name="Simulator: Vision (simulated)",
        description=f"A multimodal model: reads images and files. {_DESCRIPTION}",
        context_length=128000,
        pricing={
            "prompt": "0.0000025",
            "completion": "0.00001",
            "request": "0",
            "image": "0.001",
            "input_cache_read": "0.00000125",
        },
        supported_parameters=(*_BASIC, *_TOOLS, *_STRUCTURED),
        input_modalities=("text", "image", "file"),
    ),
    SimulatedModel(
        id="sim/reasoner",
        name="Simulator: Reasoner (simulated)",
        description=f"A reasoning model: thinks aloud before it answers. {_DESCRIPTION}",
        context_length=65536,
        pricing={
            "prompt": "0.000001",
            "completion": "0.000004",
            "request": "0",
            "image": "0",
            "internal_reasoning": "0.000004",
            "input_cache_read": "0.00000025",
        },
        supported_parameters=(*_BASIC, *_TOOLS, "reasoning", "include_reasoning"),
        reasoning=True,
    ),
    SimulatedModel(
        id="sim/structured",
        name="Simulator: Structured (simulated)",
        description=f"Answers in JSON that follows a given JSON schema. {_DESCRIPTION}",
        context_length=16384,
        pricing={"prompt": "0.00000015", "completion": "0.0000006", "request": "0", "image": "0"},
        supported_parameters=(*_BASIC, *_STRUCTURED),
    ),
)
_BY_ID = {model.id: model for model in MODELS}


def models_payload() -> dict[str, Any]:
    return {"data": [model.listing() for model in MODELS]}


@dataclass(frozen=True, slots=True)
class Directives:
    """What one request asks the simulator to do beyond answering."""

    error: str | None = None
    retry_after: int = 1
    after: int | None = None
    tokens: int | None = None
    times: int | None = None


_NUMBERS = ("retry-after", "after", "tokens", "times")


def parse_directives(*sources: str | None) -> Directives:
    """`key=value` words from the `X-Simulate` header and `[simulate ...]`; junk is ignored."""
    error: str | None = None
    numbers: dict[str, int] = {}
    for source in sources:
        for word in (source or "").replace(";", " ").replace(",", " ").split():
            key, _, value = word.partition("=")
            key = key.strip().lower()
            if key == "error" and value:
                error = value.lower()[:20]
            elif key in _NUMBERS and value.isdigit():
                numbers[key] = min(int(value), MAX_TOKENS)
    return Directives(
        error=error,
        retry_after=numbers.get("retry-after", 1),
        after=numbers.get("after"),
        tokens=numbers.get("tokens"),
        times=numbers.get("times"),
    )


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {"error": {"code": self.status, "message": self.message, "metadata": {}}}
        return web.json_response(body, status=self.status, headers=self.headers)


@dataclass
class _Answer:
    """One generated completion, before it is sent whole or in pieces."""

    generation_id: str
    model: SimulatedModel
    reasoning: list[str] = field(default_factory=list)
    show_reasoning: bool = True
    content: list[str] = field(default_factory=list)
    tool_call: tuple[str, str, list[str]] | None = None  # id, name, argument pieces
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    cached_tokens: int = 0
    images: int = 0
    fail_after: int | None = None
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def completion_tokens(self) -> int:
        arguments = len(self.tool_call[2]) if self.tool_call else 0
        return len(self.reasoning) + len(self.content) + arguments

    def usage(self) -> dict[str, Any]:
        model = self.model
        uncached = self.prompt_tokens - self.cached_tokens
        cost = (
            uncached * model.price("prompt")
            + self.cached_tokens * model.price("input_cache_read")
            + self.completion_tokens * model.price("completion")
            + self.images * model.price("image")
            + model.price("request")
        )
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": float(cost),
            "is_byok": False,
            "prompt_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "cache_write_tokens": 0,
                "audio_tokens": 0,
            },
            "completion_tokens_details": {"reasoning_tokens": len(self.reasoning)},
        }

    def chunk(self, **extra: Any) -> dict[str, Any]:
        return {
            "id": self.generation_id,
            "provider": "Simulator",
            "model": self.model.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            **extra,
        }

    def delta(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {
            "index": 0,
            "delta": {"role": "assistant", **delta},
            "finish_reason": finish_reason,
            "native_finish_reason": finish_reason,
            "logprobs": None,
        }
        return self.chunk(choices=[choice])

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if self.reasoning and self.show_reasoning:
            message["reasoning"] = "".join(self.reasoning)
            message["reasoning_details"] = [_reasoning_detail("".join(self.reasoning))]
        if self.tool_call is not None:
            call_id, name, pieces = self.tool_call
            message["tool_calls"] = [_tool_call(call_id, name, "".join(pieces))]
        return {
            "id": self.generation_id,
            "provider": "Simulator",
            "model": self.model.id,
            "object": "chat.completion",
            "created": self.created,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason,
                    "native_finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self.usage(),
        }


class Simulator:
    """The simulated upstream; `app()` is its aiohttp application."""

    def __init__(self, config: SimulatorConfig | None = None, *, sleep: Sleep = asyncio.sleep):
        self.config = config or SimulatorConfig()
        self._sleep = sleep
        # Reproducible on purpose: nothing here is a secret.
        self._chance = random.Random(self.config.seed)  # noqa: S311
        self._served = 0
        self._failed: OrderedDict[str, int] = OrderedDict()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for prefix in PREFIXES:
            app.router.add_get(f"{prefix}/models", self._models)
            app.router.add_post(f"{prefix}/chat/completions", self._chat)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        try:
            self._fail_on_demand(parse_directives(request.headers.get("X-Simulate")), "models")
        except _Refused as refused:
            return refused.response()
        return web.json_response(models_payload())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
            payload = _object(body)
            answer = self._answer(payload, body, request.headers.get("X-Simulate"))
        except _Refused as refused:
            return refused.response()
        except web.HTTPRequestEntityTooLarge:
            return _Refused(413, f"request body larger than {MAX_BODY_BYTES} bytes").response()
        headers = {"X-Generation-Id": answer.generation_id}
        if payload.get("stream") is True:
            return await self._stream(request, answer, headers)
        await self._pause(self.config.latency + self.config.token_delay * answer.completion_tokens)
        if answer.fail_after is not None:
            return web.json_response(_in_band_error(answer), headers=headers)
        return web.json_response(answer.message(), headers=headers)

    def _answer(self, payload: Mapping[str, Any], body: bytes, header: str | None) -> _Answer:
        model = _BY_ID.get(str(payload.get("model")))
        if model is None:
            raise _Refused(400, f"{payload.get('model')!s:.100} is not a valid model ID")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages or len(messages) > MAX_MESSAGES:
            raise _Refused(400, f"messages must be a list of 1 to {MAX_MESSAGES} messages")
        tools = payload.get("tools")
        if tools and not model.supports("tools"):
            raise _Refused(404, "No endpoints found that support tool use.")
        response_format = _mapping(payload.get("response_format"))
        if response_format.get("type") == "json_schema" and not model.supports(
            "structured_outputs"
        ):
            raise _Refused(404, "No endpoints found that can handle the requested parameters.")

        directives = parse_directives(header, *_DIRECTIVE.findall(_last_user_text(messages)))
        self._served += 1
        failure = self._fail_on_demand(directives, hashlib.sha256(body).hexdigest(), by_chance=True)
        # The words depend on the seeds, the model and the conversation only.
        conversation = json.dumps(messages, sort_keys=True, default=str)
        digest = hashlib.sha256(
            f"{self.config.seed}|{payload.get('seed')}|{model.id}|{conversation}".encode()
        ).hexdigest()
        rng = random.Random(digest)  # noqa: S311 - the same prompt gets the same words
        answer = _Answer(generation_id=f"gen-{self._served}-{digest[:20]}", model=model)
        answer.prompt_tokens, answer.images = _prompt_size(messages)
        if len(messages) > 1 and "input_cache_read" in model.pricing:
            answer.cached_tokens, _ = _prompt_size(messages[:-1])

        wanted = directives.tokens if directives.tokens is not None else self.config.tokens
        budget = min(wanted, MAX_TOKENS)
        limit = _positive_int(payload.get("max_tokens"))
        reasoning = model.reasoning and _reasoning_wanted(payload)
        thinking = max(1, budget // 3) if reasoning else 0
        if limit is not None and thinking + budget > limit:
            answer.finish_reason = "length"
            thinking = min(thinking, limit)
            budget = limit - thinking
        answer.reasoning = _words(rng, thinking, first="Thinking")
        answer.show_reasoning = not _mapping(payload.get("reasoning")).get("exclude") and (
            payload.get("include_reasoning") is not False
        )

        tool = _chosen_tool(tools, payload.get("tool_choice"))
        if tool is not None:
            name, parameters = tool
            arguments = json.dumps(_sample(parameters, rng), separators=(",", ":"))
            pieces = [arguments[i : i + 8] for i in range(0, len(arguments), 8)] or ["{}"]
            answer.tool_call = (f"call_{digest[:24]}", name, pieces)
            answer.finish_reason = "tool_calls"
        elif response_format.get("type") in ("json_schema", "json_object"):
            schema = _mapping(_mapping(response_format.get("json_schema")).get("schema"))
            document = _sample(schema, rng) if schema else {"answer": " ".join(_words(rng, 5))}
            text = json.dumps(document)
            answer.content = [text[i : i + 6] for i in range(0, len(text), 6)]
        else:
            answer.content = _words(rng, budget)

        if failure == "midstream":
            after = directives.after if directives.after is not None else len(answer.content) // 2
            answer.fail_after = min(after, len(answer.content))
        return answer

    def _fail_on_demand(
        self, directives: Directives, request_key: str, *, by_chance: bool = False
    ) -> str | None:
        """Refuse the request with an HTTP error when its directives (or, for a chat,
        `error_rate`) say so; with `times=N` only the first N identical requests fail.
        Returns the failure still to come in the answer (`midstream`), if any."""
        error = directives.error
        chance = self.config.error_rate if by_chance else 0.0
        if error is None and chance and self._chance.random() < chance:
            error = self._chance.choice(_RANDOM_FAILURES)
        if error is None:
            return None
        if directives.times is not None:
            tries = self._failed.pop(request_key, 0) + 1
            self._failed[request_key] = tries
            while len(self._failed) > _REMEMBERED:
                self._failed.popitem(last=False)
            if tries > directives.times:
                return None
        if not error.isdigit() or not 400 <= int(error) <= 599:
            return error
        status = int(error)
        headers = {"Retry-After": str(directives.retry_after)} if status == 429 else None
        raise _Refused(status, _HTTP_ERRORS.get(status, f"simulated HTTP {status}"), headers)

    async def _stream(
        self, request: web.Request, answer: _Answer, headers: dict[str, str]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                **headers,
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        try:
            await response.write(KEEPALIVE)
            await self._pause(self.config.latency, response)
            for event in self._events(answer):
                if event is None:
                    await self._pause(self.config.token_delay, response)
                else:
                    await response.write(event)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away; nothing is owed to it
        return response

    def _events(self, answer: _Answer) -> Iterator[bytes | None]:
        """The stream's events in order; None where a token's delay falls."""
        for piece in answer.reasoning:
            yield None  # hidden reasoning (`exclude`) takes its time all the same
            if not answer.show_reasoning:
                continue
            detail = _reasoning_detail(piece)
            yield _sse(
                answer.delta({"content": "", "reasoning": piece, "reasoning_details": [detail]})
            )
        if answer.reasoning:
            yield KEEPALIVE
        for index, piece in enumerate(answer.content):
            if index == answer.fail_after:
                yield _sse(_in_band_error(answer))
                return
            yield None
            yield _sse(answer.delta({"content": piece}))
        if answer.fail_after is not None:
            yield _sse(_in_band_error(answer))
            return
        if answer.tool_call is not None:
            call_id, name, pieces = answer.tool_call
            for index, piece in enumerate(pieces):
                yield None
                fragment: dict[str, Any] = {"index": 0, "function": {"arguments": piece}}
                if index == 0:
                    fragment = {**_tool_call(call_id, name, piece), "index": 0}
                yield _sse(answer.delta({"content": None, "tool_calls": [fragment]}))
        yield _sse(answer.delta({"content": ""}, answer.finish_reason))
        yield _sse(answer.chunk(choices=[], usage=answer.usage()))
        yield b"data: [DONE]\n\n"

    async def _pause(self, seconds: float, response: web.StreamResponse | None = None) -> None:
        """Wait, keeping a stream alive with comments the way OpenRouter does."""
        while seconds > 0:
            step = min(seconds, KEEPALIVE_EVERY)
            await self._sleep(step)
            seconds -= step
            if response is not None and seconds > 0:
                await response.write(KEEPALIVE)


def _sse(document: Mapping[str, Any]) -> bytes:
    return f"data: {json.dumps(document, separators=(',', ':'))}\n\n".encode()


def _in_band_error(answer: _Answer) -> dict[str, Any]:
    choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
    error = {"code": "server_error", "message": "Provider disconnected unexpectedly (simulated)"}
    return answer.chunk(error=error, choices=[choice])


def _reasoning_detail(text: str) -> dict[str, Any]:
    return {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}


def _tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise _Refused(400, "the request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _Refused(400, "the request body must be a JSON object")
    return value


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _reasoning_wanted(payload: Mapping[str, Any]) -> bool:
    reasoning = _mapping(payload.get("reasoning"))
    return reasoning.get("enabled") is not False and reasoning.get("effort") != "none"


def _texts(content: object) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"]


def _last_user_text(messages: Sequence[object]) -> str:
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return " ".join(_texts(message.get("content")))[-10_000:]
    return ""


def _prompt_size(messages: Sequence[object]) -> tuple[int, int]:
    """Prompt tokens (words, plus 3 per message and 85 per image) and the image count."""
    tokens = images = 0
    for message in messages:
        content = _mapping(message).get("content")
        tokens += 3 + sum(len(text.split()) for text in _texts(content))
        if isinstance(content, list):
            images += sum(1 for part in content if _mapping(part).get("type") == "image_url")
    return tokens + 85 * images, images


def _words(rng: random.Random, count: int, *, first: str = "Simulated") -> list[str]:
    """`count` tokens of sentence-like text; each but the first starts with a space."""
    tokens: list[str] = []
    sentence = 0
    for index in range(count):
        if index == 0:
            word = first
        else:
            word = rng.choice(_WORDS)
            if sentence == 0:
                word = word.capitalize()
            word = " " + word
        sentence += 1
        if sentence >= rng.randint(6, 12) or index == count - 1:
            word += "."
            sentence = 0
        tokens.append(word)
    return tokens


def _chosen_tool(tools: object, choice: object) -> tuple[str, Mapping[str, Any]] | None:
    """The function to call: the one `tool_choice` names, else the first, unless `none`."""
    if not isinstance(tools, list) or not tools or choice == "none":
        return None
    functions = [_mapping(_mapping(tool).get("function")) for tool in tools]
    named = _mapping(_mapping(choice).get("function")).get("name")
    for function in functions:
        name = function.get("name")
        if isinstance(name, str) and name and (named is None or name == named):
            return name[:64], _mapping(function.get("parameters"))
    return None


def _sample(schema: Mapping[str, Any], rng: random.Random, depth: int = 0) -> object:
    """A value that fits a (simple) JSON schema."""
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = _mapping(schema.get("properties"))
        if depth > 5:
            return {}
        return {
            str(key)[:64]: _sample(_mapping(value), rng, depth + 1)
            for key, value in list(properties.items())[:20]
        }
    if kind == "array":
        return [] if depth > 5 else [_sample(_mapping(schema.get("items")), rng, depth + 1)]
    if kind == "integer":
        return rng.randint(1, 100)
    if kind == "number":
        return round(rng.uniform(0, 100), 2)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return rng.choice(_WORDS)


@dataclass
class RunningSimulator:
    """A simulator listening on a socket; `base_url` is what a provider client is given."""

    runner: web.AppRunner
    base_url: str

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_simulator(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    sleep: Sleep = asyncio.sleep,
) -> RunningSimulator:
    """Serve a simulator in this event loop (port 0: any free one)."""
    runner = web.AppRunner(Simulator(config, sleep=sleep).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return RunningSimulator(runner, f"http://{bound_host}:{bound_port}/api/v1")
