"""How long the checks before execution take: parsing, validation (with the depth and
alias rule) and the cost estimate, for the largest documents the default limits accept
and for the fragment bomb they refuse; and the JSON nesting scan on 8 MiB bodies.

All of it runs synchronously on the event loop, so these are the times one request can
hold the server. Prints numbers only.

    .venv/bin/python bench/validation.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphql import OperationDefinitionNode, get_introspection_query, parse
from strawberry.schema.schema import validate_document

from aipasta.edge.json_depth import check_json_depth
from aipasta.settings import Settings
from schema.build import build_schema
from schema.limits import DEFAULT_LIST_WEIGHT, CostEstimator, shape_rule


def fragment_chain(settings: Settings) -> str:
    """As many fragments as the token limit allows, each spreading the one before and
    adding fields: the most fragments and selections an accepted document can have."""
    fragments = ["fragment F0 on Query { health { status version } }"]
    tokens, i = 12, 0
    while tokens + 40 < settings.max_tokens:
        i += 1
        fragments.append(f"fragment F{i} on Query {{ ...F{i - 1} health {{ status version }} }}")
        tokens += 13
    return f"{{ ...F{i} }} " + " ".join(fragments)


def repeated_field(settings: Settings) -> str:
    """One field selected again and again (merged at execution): the overlapping-fields
    rule compares the copies pairwise."""
    return "{ " + "health { status } " * ((settings.max_tokens - 4) // 4) + "}"


def fragment_bomb(levels: int = 30) -> str:
    fragments = ["fragment F0 on Query { __typename }"]
    fragments += [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels)]
    return f"{{ ...F{levels - 1} }} " + " ".join(fragments)


def best_of(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    repeat = parser.parse_args().repeat

    settings = Settings.model_construct()
    schema = build_schema(settings)._schema
    rules = (shape_rule(settings.max_depth, settings.max_aliases),)
    documents = {
        "fragment chain (token limit)": fragment_chain(settings),
        "repeated field (token limit)": repeated_field(settings),
        "GraphiQL introspection": get_introspection_query(
            True, True, True, True, True, one_of=True
        ),
        "30-fragment bomb (refused)": fragment_bomb(),
    }
    for name, text in documents.items():
        document = parse(text, max_tokens=settings.max_tokens)
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        parse_ms = best_of(repeat, functools.partial(parse, text, max_tokens=settings.max_tokens))
        validate_ms = best_of(repeat, functools.partial(validate_document, schema, document, rules))
        estimator = CostEstimator(schema, {}, DEFAULT_LIST_WEIGHT)
        cost_ms = best_of(repeat, functools.partial(estimator.operation_cost, document, operation))
        errors = validate_document(schema, document, rules)
        cost = estimator.operation_cost(document, operation)
        verdict = "accepted" if not errors and cost <= settings.max_query_cost else "refused"
        print(
            f"{name}: {len(text)} chars, cost {cost}, {verdict}; parse {parse_ms:.2f} ms, "
            f"validation {validate_ms:.2f} ms, cost {cost_ms:.2f} ms"
        )

    mib8 = 8 * 1024 * 1024
    bodies = {
        "8 MiB data URL": json.dumps({"query": "{ x }", "v": "A" * (mib8 - 100)}).encode(),
        "8 MiB of [": b"[" * mib8,
        "8 MiB of depth-60 arrays": (b"[" * 60 + b"]" * 60) * (mib8 // 120),
        "8 MiB of [[],[],...]": b"[" + b"[]," * (mib8 // 3 - 1) + b"[]]",
    }
    for name, body in bodies.items():

        def scan(b: bytes = body) -> None:
            with contextlib.suppress(json.JSONDecodeError):
                check_json_depth(b, settings.max_json_depth)

        print(f"JSON nesting scan, {name}: {best_of(max(repeat // 4, 1), scan):.1f} ms")


if __name__ == "__main__":
    main()
