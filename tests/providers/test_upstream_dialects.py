"""Each configured upstream gets its own dialect: OpenRouter (and the simulator standing
in for it) `reasoning`, the Hugging Face router and extra servers `reasoning_effort`; and
OpenRouter's listing is asked for every output modality."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from aipasta.upstreams import chat_providers, model_sources
from providers.chat import ChatRequest, ReasoningRequest
from providers.simulator import RunningSimulator
from tests.conftest import make_settings
from tests.support.fake_upstream import FakeUpstream, answer

REQUEST = ChatRequest(
    model="org/model",
    messages=[{"role": "user", "content": "Hi"}],
    reasoning=ReasoningRequest(effort="low"),
)


async def test_every_upstream_is_sent_its_own_dialect(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    upstream.default("org/model", answer("ok"))
    settings = make_settings(
        tmp_path,
        OPENROUTER_BASE_URL=upstream.url("openrouter"),
        HUGGINGFACE_BASE_URL=upstream.url("hf"),
        AIPASTA_PROVIDERS=[{"name": "ollama", "base_url": upstream.url("ollama")}],
    )
    # A simulator entry pointing at the fake: only its wiring is under test here.
    simulator = RunningSimulator(
        runner=web.AppRunner(web.Application()), base_url=upstream.url("sim")
    )
    async with aiohttp.ClientSession() as session:
        clients = chat_providers(settings, session, simulator)
        for name in ("openrouter", "huggingface", "ollama", "simulator"):
            assert "".join([d.content async for d in clients[name].stream_chat(REQUEST)]) == "ok"

    # Every chat asks for a stream, OpenRouter's with its attribution headers besides.
    headers = {call.provider: call.headers for call in upstream.chats}
    assert {name: h["Accept"] for name, h in headers.items()} == dict.fromkeys(
        ("openrouter", "hf", "ollama", "sim"), "text/event-stream"
    )
    assert headers["openrouter"]["X-Title"] == settings.app_title
    assert "HTTP-Referer" in headers["openrouter"]
    bodies = {call.provider: call.body for call in upstream.chats}
    assert bodies["openrouter"]["reasoning"] == {"effort": "low"}
    assert bodies["sim"]["reasoning"] == {"effort": "low"}
    for other in ("hf", "ollama"):
        assert bodies[other]["reasoning_effort"] == "low"
        assert "reasoning" not in bodies[other]


async def test_openrouters_listing_asks_for_every_output_modality(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async def models(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/api/v1/models", models)
    app.router.add_get("/hf/models", models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        settings = make_settings(
            tmp_path, OPENROUTER_BASE_URL=f"{base}/api/v1", HUGGINGFACE_BASE_URL=f"{base}/hf"
        )
        async with aiohttp.ClientSession() as session:
            sources = {source.name: source for source in model_sources(settings, session)}
            await sources["openrouter"].list_models()
            await sources["huggingface"].list_models()
    finally:
        await runner.cleanup()
    assert seen == [{"output_modalities": "all"}, {}]
