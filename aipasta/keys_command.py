"""`aipasta keys ...`: manage API keys with or without a running server."""

from __future__ import annotations

import argparse
import sys

from aipasta.database import close_database, open_database
from aipasta.settings import Settings
from documents.errors import DatabaseUnavailable
from resolvers.errors import KeyInputError
from resolvers.identity.key_store import ApiKeyStore


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key and print it once")
    create.add_argument("--user", required=True, help="the user id the key acts for")
    create.add_argument("--name", default="", help="a label to recognise the key by")
    create.add_argument("--admin", action="store_true", help="allow admin operations")
    actions.add_parser("list", help="list keys (never the keys themselves)")
    revoke = actions.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix", help="the prefix shown by `keys list`, or the whole key")


async def run(settings: Settings, args: argparse.Namespace) -> int:
    database, lease = await open_database(settings)
    try:
        if database is None or not await database.wait_connected(
            within=settings.db_timeout_ms / 1000 + 1
        ):
            print("aipasta: the database is unavailable", file=sys.stderr)
            return 1
        return await _act(ApiKeyStore(database), args)
    except DatabaseUnavailable:
        print("aipasta: the database is unavailable", file=sys.stderr)
        return 1
    except KeyInputError as exc:
        print(f"aipasta: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_database(settings, database, lease)


async def _act(store: ApiKeyStore, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        created = await store.create(user_id=args.user, name=args.name, admin=args.admin)
        record = created.record
        print(created.key)
        print(
            f"created {record.role} key {record.prefix}... for user {record.userId}; "
            "it is shown only now",
            file=sys.stderr,
        )
        return 0
    if args.keys_command == "list":
        print(f"{'PREFIX':<12} {'USER':<24} {'ROLE':<6} {'CREATED':<20} {'LAST USED':<20} STATE")
        for key in await store.list():
            last = key.lastUsedAt.strftime("%Y-%m-%d %H:%M") if key.lastUsedAt else "never"
            print(
                f"{key.prefix:<12} {key.userId:<24} {key.role:<6} "
                f"{key.createdAt.strftime('%Y-%m-%d %H:%M'):<20} {last:<20} "
                f"{'revoked' if key.revoked else 'active'}  {key.name}"
            )
        return 0
    revoked = await store.revoke(args.prefix)
    print(f"revoked {revoked.prefix}... of user {revoked.userId}")
    return 0
