"""The exported schema keeps every promise of the frontend's GraphQL contract.

`schema.graphql` beside this file is a copy of `../shared/api/schema.graphql` (the
frontend's contract). The server may add types, fields, optional arguments and enum
values, and may make output fields stricter (non-null) or inputs looser (nullable);
it may not rename, remove or change anything the contract names.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLType,
    GraphQLUnionType,
    build_schema,
    print_ast,
)
from graphql.type import introspection_types, specified_scalar_types
from graphql.utilities import get_default_value_ast

from schema.build import export_sdl

HERE = Path(__file__).resolve().parent
CONTRACT_COPY = HERE / "schema.graphql"
REPO_ROOT = HERE.parent.parent
SHARED_CONTRACT = REPO_ROOT.parent / "shared" / "api" / "schema.graphql"

BUILT_IN_TYPES = frozenset(introspection_types) | frozenset(specified_scalar_types)


# ------------------------------------------------------------------ the checker


def _kind(named: GraphQLNamedType) -> str:
    kinds: list[tuple[type[GraphQLNamedType], str]] = [
        (GraphQLObjectType, "object"),
        (GraphQLInterfaceType, "interface"),
        (GraphQLInputObjectType, "input"),
        (GraphQLEnumType, "enum"),
        (GraphQLUnionType, "union"),
        (GraphQLScalarType, "scalar"),
    ]
    for cls, name in kinds:
        if isinstance(named, cls):
            return name
    return type(named).__name__


def _output_compatible(contract: GraphQLType, exported: GraphQLType) -> bool:
    """Exported may be non-null where the contract is nullable; otherwise equal."""
    if isinstance(exported, GraphQLNonNull):
        inner = contract.of_type if isinstance(contract, GraphQLNonNull) else contract
        return _output_compatible(inner, exported.of_type)
    if isinstance(contract, GraphQLNonNull):
        return False
    if isinstance(contract, GraphQLList) or isinstance(exported, GraphQLList):
        return (
            isinstance(contract, GraphQLList)
            and isinstance(exported, GraphQLList)
            and _output_compatible(contract.of_type, exported.of_type)
        )
    return _named(contract) == _named(exported)


def _input_compatible(contract: GraphQLType, exported: GraphQLType) -> bool:
    """Exported may be nullable where the contract is non-null; otherwise equal."""
    if isinstance(contract, GraphQLNonNull):
        inner = exported.of_type if isinstance(exported, GraphQLNonNull) else exported
        return _input_compatible(contract.of_type, inner)
    if isinstance(exported, GraphQLNonNull):
        return False
    if isinstance(contract, GraphQLList) or isinstance(exported, GraphQLList):
        return (
            isinstance(contract, GraphQLList)
            and isinstance(exported, GraphQLList)
            and _input_compatible(contract.of_type, exported.of_type)
        )
    return _named(contract) == _named(exported)


def _named(type_: GraphQLType) -> str:
    return str(getattr(type_, "name", type_))


def _default(value: GraphQLArgument | GraphQLInputField) -> str | None:
    """The default value as GraphQL source text, or None when there is none."""
    node = get_default_value_ast(value)
    return None if node is None else print_ast(node)


def _required(value: GraphQLArgument | GraphQLInputField) -> bool:
    return isinstance(value.type, GraphQLNonNull) and get_default_value_ast(value) is None


def _check_inputs(
    where: str,
    what: str,
    contract: dict[str, GraphQLArgument] | dict[str, GraphQLInputField],
    exported: dict[str, GraphQLArgument] | dict[str, GraphQLInputField],
) -> list[str]:
    problems: list[str] = []
    for name, want in contract.items():
        got = exported.get(name)
        if got is None:
            problems.append(f"{where}: {what} `{name}` is missing")
            continue
        if not _input_compatible(want.type, got.type):
            problems.append(
                f"{where}: {what} `{name}` has type {got.type}, contract says {want.type}"
            )
        want_default, got_default = _default(want), _default(got)
        if want_default is not None and want_default != got_default:
            problems.append(
                f"{where}: {what} `{name}` has default {got_default or 'none'}, "
                f"contract says {want_default}"
            )
    for name, got in exported.items():
        if name not in contract and _required(got):
            problems.append(
                f"{where}: new required {what} `{name}: {got.type}` is not in the contract"
            )
    return problems


def _check_type(
    name: str, contract: GraphQLNamedType, exported: GraphQLNamedType | None
) -> list[str]:
    if exported is None:
        return [f"type `{name}` is missing"]
    if _kind(contract) != _kind(exported):
        return [f"type `{name}` has kind {_kind(exported)}, contract says {_kind(contract)}"]
    problems: list[str] = []
    if isinstance(contract, GraphQLObjectType | GraphQLInterfaceType):
        assert isinstance(exported, GraphQLObjectType | GraphQLInterfaceType)
        for field_name, want in contract.fields.items():
            got = exported.fields.get(field_name)
            where = f"{name}.{field_name}"
            if got is None:
                problems.append(f"field `{where}` is missing")
                continue
            if not _output_compatible(want.type, got.type):
                problems.append(f"field `{where}` has type {got.type}, contract says {want.type}")
            problems += _check_inputs(where, "argument", want.args, got.args)
        for interface in contract.interfaces:
            if interface.name not in {i.name for i in exported.interfaces}:
                problems.append(f"type `{name}` no longer implements `{interface.name}`")
    elif isinstance(contract, GraphQLInputObjectType):
        assert isinstance(exported, GraphQLInputObjectType)
        problems += _check_inputs(f"input {name}", "field", contract.fields, exported.fields)
    elif isinstance(contract, GraphQLEnumType):
        assert isinstance(exported, GraphQLEnumType)
        problems += [
            f"enum value `{name}.{value}` is missing"
            for value in contract.values
            if value not in exported.values
        ]
    elif isinstance(contract, GraphQLUnionType):
        assert isinstance(exported, GraphQLUnionType)
        members = {member.name for member in exported.types}
        problems += [
            f"union `{name}` lost member `{member.name}`"
            for member in contract.types
            if member.name not in members
        ]
    return problems


def incompatibilities(contract_sdl: str, exported_sdl: str) -> list[str]:
    """Every way in which `exported_sdl` breaks a promise of `contract_sdl`."""
    contract: GraphQLSchema = build_schema(contract_sdl)
    exported: GraphQLSchema = build_schema(exported_sdl)
    problems: list[str] = []
    for operation in ("query", "mutation", "subscription"):
        want = getattr(contract, f"{operation}_type")
        got = getattr(exported, f"{operation}_type")
        if want is not None and (got is None or got.name != want.name):
            problems.append(
                f"{operation} root type is {got.name if got else 'missing'}, "
                f"contract says {want.name}"
            )
    for name, named in sorted(contract.type_map.items()):
        if name in BUILT_IN_TYPES:
            continue
        problems += _check_type(name, named, exported.type_map.get(name))
    return problems


# ------------------------------------------------------------------ the contract


def _report(problems: list[str]) -> str:
    return f"{len(problems)} incompatibilities with the contract:\n  " + "\n  ".join(problems)


def test_exported_schema_keeps_the_contract() -> None:
    problems = incompatibilities(CONTRACT_COPY.read_text(), export_sdl())
    assert not problems, _report(problems)


def test_contract_copy_matches_the_shared_contract() -> None:
    if not SHARED_CONTRACT.is_file():
        pytest.skip(f"no shared contract at {SHARED_CONTRACT} (../shared is not checked out)")
    assert CONTRACT_COPY.read_bytes() == SHARED_CONTRACT.read_bytes(), (
        f"{CONTRACT_COPY.relative_to(REPO_ROOT)} differs from {SHARED_CONTRACT}: "
        f"copy the shared contract over it"
    )


# ------------------------------------------------------------------ the checker can fail


def _mutate(sdl: str, old: str, new: str) -> str:
    assert sdl.count(old) == 1, f"test set-up: {old!r} must occur exactly once in the contract"
    return sdl.replace(old, new)


Edit = tuple[str, str]

BREAKAGES: list[tuple[str, list[Edit], str]] = [
    # (case, edits to the contract, expected report)
    (
        "renamed field",
        [("  upstreamId: String!\n", "  upstreamID: String!\n")],
        "field `Model.upstreamId` is missing",
    ),
    (
        "dropped enum value",
        [("  PROVIDER_TIMEOUT\n", "")],
        "enum value `ErrorCode.PROVIDER_TIMEOUT` is missing",
    ),
    (
        "changed type",
        [("  contextLength: Int\n", "  contextLength: String\n")],
        "field `Model.contextLength` has type String, contract says Int",
    ),
    (
        "new required argument",
        [("model(id: ID!): Model", "model(id: ID!, provider: String!): Model")],
        "Query.model: new required argument `provider: String!`",
    ),
    (
        "output made nullable",
        [("  totalCount: Int!\n", "  totalCount: Int\n")],
        "field `ModelConnection.totalCount` has type Int, contract says Int!",
    ),
    (
        "list flattened",
        [("  supportedParameters: [String!]!\n", "  supportedParameters: String!\n")],
        "field `Model.supportedParameters` has type String!, contract says [String!]!",
    ),
    (
        "optional argument made required",
        [("models(filter: ModelFilter, first", "models(filter: ModelFilter!, first")],
        "Query.models: argument `filter` has type ModelFilter!, contract says ModelFilter",
    ),
    (
        "changed default",
        [("first: Int = 50, after", "first: Int = 10, after")],
        "Query.models: argument `first` has default 10, contract says 50",
    ),
    (
        "dropped default",
        [("groupBy: UsageGroupBy = MODEL", "groupBy: UsageGroupBy")],
        "Query.usage: argument `groupBy` has default none, contract says MODEL",
    ),
    (
        "removed argument",
        [("chatHistory(sessionId: ID!, last", "chatHistory(last")],
        "Query.chatHistory: argument `sessionId` is missing",
    ),
    (
        "new required input field",
        [("input ChatOptions {\n", "input ChatOptions {\n  provider: String!\n")],
        "input ChatOptions: new required field `provider: String!`",
    ),
    (
        "input field type changed",
        [("  temperature: Float\n", "  temperature: Int\n")],
        "input ChatOptions: field `temperature` has type Int, contract says Float",
    ),
    (
        "union member dropped",
        [("ChatDelta | ChatCompleted | ChatFailed", "ChatDelta | ChatCompleted")],
        "union `ChatStreamEvent` lost member `ChatFailed`",
    ),
    (
        "kind changed",
        [("scalar DateTime\n", "type DateTime {\n  iso: String!\n}\n")],
        "type `DateTime` has kind object, contract says scalar",
    ),
    (
        "type removed",
        [
            ("type UsageReport {\n", "type Report {\n"),
            ("UsageGroupBy = MODEL): UsageReport!", "UsageGroupBy = MODEL): Report!"),
        ],
        "type `UsageReport` is missing",
    ),
]


def _broken(contract: str, edits: list[Edit]) -> str:
    for old, new in edits:
        contract = _mutate(contract, old, new)
    return contract


@pytest.mark.parametrize(
    ("edits", "expected"),
    [pytest.param(edits, expected, id=case) for case, edits, expected in BREAKAGES],
)
def test_checker_reports_a_breaking_change(edits: list[Edit], expected: str) -> None:
    contract = CONTRACT_COPY.read_text()
    problems = incompatibilities(contract, _broken(contract, edits))
    assert any(expected in problem for problem in problems), _report(problems)


def test_checker_lists_every_incompatibility_at_once() -> None:
    contract = CONTRACT_COPY.read_text()
    cases = BREAKAGES[:4]  # renamed field, dropped enum value, changed type, required argument
    broken = _broken(contract, [edit for _case, edits, _message in cases for edit in edits])
    problems = incompatibilities(contract, broken)
    missing = [message for _c, _e, message in cases if not any(message in p for p in problems)]
    assert not missing, f"not reported: {missing}\n{_report(problems)}"
    assert len(problems) == len(cases), _report(problems)


def test_checker_accepts_the_contract_itself_and_allowed_additions() -> None:
    contract = CONTRACT_COPY.read_text()
    assert incompatibilities(contract, contract) == []

    evolved = contract
    for old, new in [
        ("  description: String\n", "  description: String!\n"),  # stricter output
        ("renameChatSession(sessionId: ID!", "renameChatSession(sessionId: ID"),  # looser input
        ("model(id: ID!): Model", "model(id: ID!, exact: Boolean! = false): Model"),  # optional
        ("  DATABASE_UNAVAILABLE\n", "  DATABASE_UNAVAILABLE\n  QUOTA_EXCEEDED\n"),  # enum value
        ("input ChatOptions {\n", "input ChatOptions {\n  reasoning: Boolean\n"),  # input field
        ("scalar DateTime\n", "scalar DateTime\n\ntype Extra {\n  x: Int\n}\n"),  # new type
    ]:
        evolved = _mutate(evolved, old, new)
    problems = incompatibilities(contract, evolved)
    assert problems == [], _report(problems)
