"""`aipasta` command line: serve, export-schema, keys."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aipasta import keys_command
from aipasta.settings import Settings, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aipasta", description="AI Pasta GraphQL gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the API server")
    serve.add_argument("--host", help="interface to bind (AIPASTA_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (AIPASTA_PORT)")
    commands.add_parser("export-schema", help="print the GraphQL schema (SDL)")
    keys_command.add_parser(commands)
    return parser


def _serve(settings: Settings) -> int:
    import uvicorn

    from aipasta.app import create_app
    from aipasta.logs import configure_logging
    from resolvers.rate_limit_store import StoreConfigError, open_storage

    try:
        # Here rather than in the lifespan, whose failure uvicorn prints as a traceback.
        open_storage(settings.rate_limit_storage)
    except StoreConfigError as exc:
        print(f"aipasta: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.value.lower(),
        lifespan="on",
        proxy_headers=False,
        server_header=False,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "export-schema":
        from schema.build import export_sdl

        sys.stdout.write(export_sdl())
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

        configure_logging(settings.log_level)
        return asyncio.run(keys_command.run(settings, args))
    return _serve(settings)
