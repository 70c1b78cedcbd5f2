"""Headless Chromium driven over the Chrome DevTools Protocol, with aiohttp's websocket.

`chromium(tmp_path)` starts Debian's `chromium` with a fresh profile and every
non-loopback destination unreachable (host names resolve to nothing but 127.0.0.1, and
any proxied request goes to a dead port), opens one page and yields a `Page`. The page
records every request and websocket the browser attempts (`Page.urls`), console errors
and uncaught exceptions, so a test can assert that nothing tried to leave the machine.
`CHROMIUM` is the binary, or None where there is none (the tests that need it skip).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0
LOOPBACK = "127.0.0.1"
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")

# The machine notes' flags, and the blocking: no name resolves except the loopback
# address, and a dead proxy (port 9, discard) for anything the resolver rules miss.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--remote-debugging-port=0",
    f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {LOOPBACK}",
    "--proxy-server=http://127.0.0.1:9",
    f"--proxy-bypass-list={LOOPBACK}",
    "--window-size=1400,900",
)


class CDPError(Exception):
    pass


class Page:
    """One attached page target: commands, and what the page did."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self.urls: list[str] = []  # every request and websocket the page attempted
        self.problems: list[str] = []  # console errors, log errors, uncaught exceptions
        self._reader = asyncio.create_task(self._read())

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self.ws.send_json(
            {"id": message_id, "method": method, "params": params, "sessionId": self.session_id}
        )
        async with asyncio.timeout(COMMAND_TIMEOUT):
            return await future

    def next_event(self, method: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the next `method` event (ask before causing it)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._events.setdefault(method, []).append(future)
        return future

    async def evaluate(self, expression: str) -> Any:
        """`expression`'s value (a promise is awaited); a page exception raises."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(details.get("exception", {}).get("description") or details)
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, within: float = 20.0) -> Any:
        """The first truthy value of `expression`, checked in the page until `within` s."""
        source = json.dumps(expression)
        return await self.evaluate(
            f"""new Promise((resolve, reject) => {{
              const deadline = Date.now() + {within * 1000};
              const check = () => {{
                let value;
                try {{ value = ({expression}); }} catch (e) {{ value = undefined; }}
                if (value) return resolve(value);
                if (Date.now() > deadline) return reject(new Error("timed out: " + {source}));
                setTimeout(check, 50);
              }};
              check();
            }})"""
        )

    async def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element `selector` matches."""
        box = await self.wait_for(
            f"""(() => {{
              const el = document.querySelector({json.dumps(selector)});
              if (!el) return null;
              const r = el.getBoundingClientRect();
              return r.width > 0 ? {{x: r.x + r.width / 2, y: r.y + r.height / 2}} : null;
            }})()"""
        )
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=1,
            )

    async def type_text(self, text: str) -> None:
        """Text typed into whatever has the focus (as an input method commits it)."""
        await self.send("Input.insertText", text=text)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def non_loopback(self) -> list[str]:
        """Attempted URLs whose host is not the loopback address (data: URLs aside)."""
        return [
            url
            for url in self.urls
            if urlsplit(url).scheme != "data" and urlsplit(url).hostname != LOOPBACK
        ]

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = message.json()
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(CDPError(data["error"]))
                    else:
                        future.set_result(data.get("result", {}))
                continue
            if data.get("sessionId") != self.session_id:
                continue
            self._record(data["method"], data.get("params", {}))
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(CDPError("the browser closed the connection"))

    def _record(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.urls.append(params["request"]["url"])
        elif method == "Network.webSocketCreated":
            self.urls.append(params["url"])
        elif method == "Runtime.exceptionThrown":
            self.problems.append(str(params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.problems.append(params["entry"]["text"])
        elif method == "Runtime.consoleAPICalled" and params["type"] == "error":
            self.problems.append(str(params["args"]))
        for future in self._events.pop(method, []):
            if not future.done():
                future.set_result(params)


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[Page]:
    """Headless Chromium with a fresh profile under `tmp_path`, and one blank page."""
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr: list[bytes] = []
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not (found := _LISTENING.search(line := await process.stderr.readline())):
                if not line:
                    raise CDPError(b"chromium exited: " + b"".join(stderr))
                stderr.append(line)
        drain = asyncio.create_task(_drain(process.stderr, stderr))
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(found.group(1).decode(), max_msg_size=0) as browser,
        ):
            page = await _attach(browser)
            try:
                yield page
            finally:
                page._reader.cancel()
                # The browser itself (not the page session) is asked to close.
                with contextlib.suppress(aiohttp.ClientError, ConnectionError):
                    await browser.send_json({"id": 0, "method": "Browser.close"})
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        if drain is not None:
            drain.cancel()


async def _attach(browser: aiohttp.ClientWebSocketResponse) -> Page:
    """Attach to the start page over the browser connection (flat sessions)."""
    await browser.send_json({"id": 1, "method": "Target.getTargets"})
    targets = await _reply(browser, 1)
    (target,) = [t for t in targets["targetInfos"] if t["type"] == "page"]
    await browser.send_json(
        {
            "id": 2,
            "method": "Target.attachToTarget",
            "params": {"targetId": target["targetId"], "flatten": True},
        }
    )
    session_id: str = (await _reply(browser, 2))["sessionId"]
    page = Page(browser, session_id)
    for domain in ("Page", "Network", "Runtime", "Log"):
        await page.send(f"{domain}.enable")
    return page


async def _reply(ws: aiohttp.ClientWebSocketResponse, message_id: int) -> dict[str, Any]:
    async with asyncio.timeout(COMMAND_TIMEOUT):
        while True:
            data = json.loads(await ws.receive_str())
            if data.get("id") == message_id:
                if "error" in data:
                    raise CDPError(data["error"])
                result: dict[str, Any] = data["result"]
                return result


async def _drain(stream: asyncio.StreamReader, into: list[bytes]) -> None:
    while line := await stream.readline():
        into.append(line)
