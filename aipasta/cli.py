"""`aipasta` command line: serve, export-schema, settings, keys, simulate-upstream."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence

from aipasta import keys_command
from aipasta.settings import Settings, SettingsError, load_settings, setting_docs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipasta", description="AI Pasta GraphQL gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the API server")
    serve.add_argument("--host", help="interface to bind (AIPASTA_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (AIPASTA_PORT)")
    commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    listing = commands.add_parser(
        "settings", help="list every setting: its variable, default and meaning"
    )
    listing.add_argument("--markdown", action="store_true", help="as the README's settings table")
    keys_command.add_parser(commands)
    _add_simulator_parser(commands)
    return parser


def _add_simulator_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from providers.simulator import MAX_TOKENS

    simulate = commands.add_parser(
        "simulate-upstream", help="serve a simulated OpenRouter-compatible upstream"
    )
    simulate.add_argument("--host", default="127.0.0.1", help="interface to bind")
    simulate.add_argument("--port", type=int, default=9100, help="port to listen on")
    simulate.add_argument(
        "--tokens", type=int, default=50, help=f"tokens per answer (at most {MAX_TOKENS})"
    )
    simulate.add_argument("--token-delay-ms", type=float, default=20.0, help="delay per token")
    simulate.add_argument("--latency-ms", type=float, default=0.0, help="delay before answering")
    simulate.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests that fail (0 to 1)"
    )
    simulate.add_argument("--seed", type=int, default=0, help="seed of the generated text")


def _simulate(args: argparse.Namespace) -> int:
    from aiohttp import web

    from providers.simulator import Simulator, SimulatorConfig

    try:
        config = SimulatorConfig(
            tokens=args.tokens,
            token_delay=args.token_delay_ms / 1000,
            latency=args.latency_ms / 1000,
            error_rate=args.error_rate,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"aipasta simulate-upstream: {exc}", file=sys.stderr)
        return 2
    print(
        f"Simulated upstream on http://{args.host}:{args.port}/api/v1 - point the gateway at it "
        f"with OPENROUTER_BASE_URL=http://{args.host}:{args.port}/api/v1",
        file=sys.stderr,
        flush=True,
    )
    web.run_app(Simulator(config).app(), host=args.host, port=args.port, print=None)
    return 0


def settings_text() -> str:
    """Every setting with its variable, default and description; no secret's value."""
    lines = []
    for doc in setting_docs():
        if doc.secret:
            lines.append(f"{doc.env_name} (secret)")
        elif doc.default:
            lines.append(f"{doc.env_name}={doc.default}")
        else:
            lines.append(f"{doc.env_name} (unset)")
        lines.extend(
            textwrap.wrap(
                doc.description, width=88, initial_indent="    ", subsequent_indent="    "
            )
        )
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """The README's settings table."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for doc in setting_docs():
        default = f"`{doc.default}`" if doc.default else "unset"
        rows.append(f"| `{doc.env_name}` | {default} | {doc.description} |")
    return "\n".join(rows) + "\n"


def _serve(settings: Settings) -> int:
    import uvicorn

    from aipasta.app import create_app
    from aipasta.logs import configure_logging, uvicorn_log_config
    from resolvers.errors import StoreConfigError
    from resolvers.limits.store import open_storage

    try:
        # Here rather than in the lifespan, whose failure uvicorn prints as a traceback.
        open_storage(settings.rate_limit_storage)
    except StoreConfigError as exc:
        print(f"aipasta: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        create_app(settings, freeze_after_start=True),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value.lower(),
        # One format per process: uvicorn's logs go through the root logger's formatter.
        log_config=uvicorn_log_config(settings.log_level),
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        # Without a bound, a stop waits forever for a websocket client that stopped
        # reading (its close cannot get through) or for a long chat.
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "export-schema":
        from schema.build import export_sdl

        sys.stdout.write(export_sdl())
        return 0
    if args.command == "simulate-upstream":
        return _simulate(args)
    if args.command == "settings":
        sys.stdout.write(settings_table() if args.markdown else settings_text())
        return 0
    overrides = {}
    if getattr(args, "host", None):
        overrides["AIPASTA_HOST"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["AIPASTA_PORT"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"aipasta: {exc}", file=sys.stderr)
        return 2
    if args.command == "keys":
        import asyncio

        from aipasta.logs import configure_logging

        configure_logging(settings.log_level, settings.log_format)
        return asyncio.run(keys_command.run(settings, args))
    return _serve(settings)
