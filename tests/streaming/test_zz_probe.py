from tests.streaming.conftest import *
from tests.streaming.sse_upstream import answer
from tests.streaming.test_chat_stream import chat_input
async def test_probe(sse, stream_app, ws_client, store):
    sse.default(MISTRAL_UPSTREAM, answer("x"))
    app = await stream_app()
    ws = await ws_client(app)
    await ws.run(CHAT_STREAM, chat_input())
    await ws.run(CHAT_STREAM, chat_input())
    recs = await usage_records(store, 2)
    print([r["requestId"] for r in recs])
