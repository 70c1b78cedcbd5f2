"""Each seam of schema.strawberry_seams against the installed Strawberry.

Before raising the strawberry-graphql pin, run this module on the new release: a failure
names the seam that moved, and what overrides or uses it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import sys
import tomllib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import fields, is_dataclass
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import strawberry
from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    parse,
    specified_rules,
)
from packaging.requirements import Requirement
from starlette.datastructures import QueryParams
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http.websocket_origin import normalize_allowed_origins
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL

from schema.build import build_schema
from schema.strawberry_seams import (
    OVERRIDES,
    USES,
    BaseGraphQLTransportWSHandler,
    CannotGetOperationTypeError,
    CoreExecutionContext,
    HTTPException,
    SSETransport,
    closes_websocket,
    convert_inputs_fast,
    core_schema,
    is_default_resolver,
    plain_attribute,
    strawberry_class,
    validate,
)
from schema.types.enums import ChatRole
from schema.types.inputs import AttachmentInput, ChatInput

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
OUR_PACKAGES = ("aipasta", "schema", "resolvers", "providers", "documents")
# Set on every subclass of an ABC or a Protocol: not overrides.
SET_BY_PYTHON = frozenset({"_abc_impl", "_is_protocol"})


def _import_everything() -> None:
    """Every module of ours, so that every subclass of a Strawberry class exists."""
    for name in OUR_PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)


_import_everything()


def ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] in OUR_PACKAGES


def our_subclasses(base: type) -> Iterator[type]:
    seen: set[type] = set()
    stack: list[type] = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if ours(cls):
            yield cls


def _is_strawberrys(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "strawberry"


def parameters(function: Callable[..., Any]) -> list[tuple[str, object, bool]]:
    """What an override must keep of its original: names, kinds and which have defaults
    (annotations differ: ours name the gateway's Context)."""
    signature = inspect.signature(function)
    return [
        (p.name, p.kind, p.default is not inspect.Parameter.empty)
        for p in signature.parameters.values()
    ]


def _member(base: type, name: str) -> str:
    return f"{base.__module__}.{base.__qualname__}.{name}"


# --- The pin --------------------------------------------------------------------------


def test_the_installed_strawberry_is_within_the_pin() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    (pin,) = (Requirement(r) for r in project["dependencies"] if r.startswith("strawberry-graphql"))
    installed = version("strawberry-graphql")
    assert pin.specifier.contains(installed), (
        f"strawberry-graphql {installed} is installed, the pin is {pin}: run this module, "
        "then raise the pin"
    )
    assert any(s.operator == "<" for s in pin.specifier), "a 0.x pin needs a ceiling"


# --- Overrides ------------------------------------------------------------------------

OVERRIDDEN = [(base, name) for base, names in OVERRIDES.items() for name in sorted(names)]


@pytest.mark.parametrize(
    ("base", "name"), OVERRIDDEN, ids=[f"{b.__qualname__}.{n}" for b, n in OVERRIDDEN]
)
def test_an_overridden_member_is_still_strawberrys_with_our_signature(
    base: type, name: str
) -> None:
    overriders = [cls for cls in our_subclasses(base) if name in vars(cls)]
    assert overriders, f"nothing of ours overrides {_member(base, name)}: drop it from OVERRIDES"
    assert hasattr(base, name), (
        f"Strawberry has no {_member(base, name)} any more, which "
        f"{', '.join(c.__qualname__ for c in overriders)} override"
    )
    theirs = getattr(base, name)
    for cls in overriders:
        mine = vars(cls)[name]
        if inspect.isroutine(theirs):
            assert parameters(mine) == parameters(theirs), (
                f"{_member(base, name)} changed its parameters: "
                f"{inspect.signature(theirs)}, {cls.__qualname__} has {inspect.signature(mine)}"
            )
            assert inspect.iscoroutinefunction(mine) == inspect.iscoroutinefunction(theirs), (
                f"{_member(base, name)} changed between sync and async"
            )
        else:  # a class attribute naming a class: ours must be a kind of it
            assert isinstance(mine, type), mine
            assert issubclass(mine, getattr(theirs, "__origin__", theirs)), (
                f"{cls.__qualname__}.{name} is no longer a kind of {theirs}"
            )


def test_every_override_of_a_strawberry_member_is_listed() -> None:
    unlisted: list[str] = []
    for module in list(sys.modules.values()):
        if module is None or module.__name__.split(".")[0] not in OUR_PACKAGES:
            continue
        for cls in vars(module).values():
            if not isinstance(cls, type) or cls.__module__ != module.__name__:
                continue
            if not any(_is_strawberrys(b) for b in cls.__mro__):
                continue
            base = next((b for b in OVERRIDES if issubclass(cls, b)), None)
            assert base is not None, (
                f"{cls.__qualname__} subclasses Strawberry's "
                f"{next(b for b in cls.__mro__ if _is_strawberrys(b)).__qualname__}: "
                "add it to schema.strawberry_seams.OVERRIDES"
            )
            unlisted += [
                f"{cls.__qualname__}.{name} ({base.__qualname__})"
                for name in vars(cls)
                if not name.startswith("__") and name not in SET_BY_PYTHON
                if hasattr(base, name) and name not in OVERRIDES[base]
            ]
    assert not unlisted, f"overrides missing from OVERRIDES: {sorted(unlisted)}"


# --- Members used without overriding them ----------------------------------------------


def _instance_members(base: type) -> set[str]:
    """Attributes set on instances, which the class does not show."""
    if base is BaseGraphQLTransportWSHandler:
        handler = BaseGraphQLTransportWSHandler(
            view=None,  # type: ignore[arg-type]
            websocket=None,  # type: ignore[arg-type]
            context=None,
            root_value=None,
            schema=None,  # type: ignore[arg-type]
            connection_init_wait_timeout=timedelta(seconds=1),
            max_subscriptions_per_connection=1,
        )
        return set(vars(handler))
    if base is CoreExecutionContext:
        executor = CoreExecutionContext.build(core_schema(build_schema()), parse("{ __typename }"))
        assert isinstance(executor, CoreExecutionContext), executor
        return set(vars(executor))
    if base is strawberry.Schema:
        return set(vars(build_schema()))
    if is_dataclass(base):
        return {f.name for f in fields(base)}
    return set()


USED = [(base, name) for base, names in USES.items() for name in sorted(names)]


@pytest.mark.parametrize(("base", "name"), USED, ids=[f"{b.__qualname__}.{n}" for b, n in USED])
def test_a_member_we_use_is_still_there(base: type, name: str) -> None:
    assert hasattr(base, name) or name in _instance_members(base), (
        f"Strawberry has no {_member(base, name)} any more"
    )


# --- Behaviour relied on -----------------------------------------------------------------


def test_core_schema_is_the_graphql_core_schema_executed() -> None:
    schema = build_schema()
    graphql_schema = core_schema(schema)
    assert isinstance(graphql_schema, GraphQLSchema)
    assert graphql_schema.query_type is not None
    assert graphql_schema.query_type.name == "Query"


def test_validate_applies_the_rules_given_and_returns_their_errors() -> None:
    graphql_schema = core_schema(build_schema())
    assert validate(graphql_schema, parse("{ __typename }"), specified_rules) == []
    (error,) = validate(graphql_schema, parse("{ noSuchField }"), specified_rules)
    assert "noSuchField" in error.message


@strawberry.type
class _Query:
    @strawberry.field
    def answer(self) -> str:
        return "ran"

    @strawberry.field
    def other(self) -> str:
        return "other"


def _schema_with(extension: type[SchemaExtension]) -> strawberry.Schema:
    return strawberry.Schema(query=_Query, extensions=[extension])


async def test_a_document_set_in_on_operation_is_used_unparsed() -> None:
    class Preparsed(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            self.execution_context.graphql_document = parse("{ other }")
            yield

    result = await _schema_with(Preparsed).execute("{ answer }")
    assert result.data == {"other": "other"}  # the document set, not the text sent


async def test_errors_set_in_on_validate_skip_validation_and_are_the_answer(
    work: Counter[str],
) -> None:
    class Refuses(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            self.execution_context.pre_execution_errors = [GraphQLError("refused")]
            yield

    class AlreadyValid(SchemaExtension):
        def on_validate(self) -> Iterator[None]:
            self.execution_context.pre_execution_errors = []
            yield

    refused = await _schema_with(Refuses).execute("{ answer }")
    assert refused.data is None
    assert [e.message for e in refused.errors or []] == ["refused"]
    valid = await _schema_with(AlreadyValid).execute("{ answer }")
    assert valid.errors is None and valid.data == {"answer": "ran"}
    assert work["validate"] == 0


@strawberry.type(name="SeamEvent")
class _Event:
    text: str
    renamed_field: int = strawberry.field(name="n")

    @strawberry.field
    def computed(self) -> str:
        return self.text.upper()


@strawberry.type
class _Subscription:
    @strawberry.subscription
    async def events(self) -> AsyncIterator[_Event]:
        yield _Event(text="a", renamed_field=1)
        yield _Event(text="b", renamed_field=2)


async def test_the_execution_context_class_executes_each_subscription_event() -> None:
    events: list[object] = []

    class Recording(CoreExecutionContext):
        def build_per_event_executor(self, payload: Any) -> Any:
            events.append(payload)
            return super().build_per_event_executor(payload)

    schema = strawberry.Schema(
        query=_Query, subscription=_Subscription, execution_context_class=Recording
    )
    stream = await schema.subscribe("subscription { events { text n } }")
    assert isinstance(stream, AsyncIterator)
    answers = [result.data async for result in stream]
    assert answers == [{"events": {"text": "a", "n": 1}}, {"events": {"text": "b", "n": 2}}]
    assert [getattr(e, "text", None) for e in events] == ["a", "b"]


def test_strawberry_class_plain_attribute_and_default_resolver_name_what_a_field_reads() -> None:
    schema = strawberry.Schema(query=_Query, subscription=_Subscription)
    event_type = core_schema(schema).get_type("SeamEvent")
    assert isinstance(event_type, GraphQLObjectType)
    assert strawberry_class(event_type) is _Event
    plain, computed = event_type.fields["n"], event_type.fields["computed"]
    assert plain_attribute(plain) == "renamed_field"
    assert is_default_resolver(plain.resolve)
    assert plain_attribute(computed) is None
    assert not is_default_resolver(computed.resolve)
    query_type = core_schema(schema).query_type
    assert query_type is not None and strawberry_class(query_type) is _Query


def test_closes_websocket_for_a_syntax_error_and_a_missing_operation_only() -> None:
    syntax = GraphQLSyntaxError(parse("{ a }").loc.source, 0, "bad")  # type: ignore[union-attr]
    missing = GraphQLError("no op", original_error=CannotGetOperationTypeError("Nope"))
    assert closes_websocket(syntax)
    assert closes_websocket(missing)
    assert not closes_websocket(GraphQLError("validation"))
    assert not closes_websocket(GraphQLError("resolver", original_error=ValueError("x")))


def test_parse_json_wraps_what_decode_json_raises_as_the_400s_cause() -> None:
    class TooDeep(json.JSONDecodeError):
        pass

    class View(GraphQL[None, None]):
        def decode_json(self, data: str | bytes) -> object:
            raise TooDeep("too deep", "[[", 0)

    view = View(strawberry.Schema(query=_Query))
    with pytest.raises(HTTPException) as refused:
        view.parse_json(b"[[")
    assert refused.value.status_code == 400
    assert isinstance(refused.value.__cause__, TooDeep)


def test_the_view_tells_a_streaming_accept_and_parses_get_parameters() -> None:
    view = GraphQL[None, None](
        strawberry.Schema(query=_Query),
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
    )
    assert view._get_stream_transport_from_headers({"Accept": "text/event-stream"})
    assert view._get_stream_transport_from_headers({"accept": "application/json"}) is None
    assert view._get_stream_transport_from_headers({}) is None
    parsed = view.parse_query_params(
        QueryParams("query=%7B+a+%7D&variables=%7B%22n%22%3A+1%7D&operationName=A")
    )
    assert parsed == {"query": "{ a }", "variables": {"n": 1}, "operationName": "A"}


def test_normalize_allowed_origins_accepts_origins_and_refuses_urls() -> None:
    assert normalize_allowed_origins(["https://Example.com:443", "*"]) == {
        "https://example.com",
        "*",
    }
    with pytest.raises(ValueError, match="Invalid origin"):
        normalize_allowed_origins(["https://example.com/path"])


def test_sse_transport_names_its_protocol_and_writes_graphql_sse_events() -> None:
    assert SSETransport.protocol == "sse"  # GraphQLRequestData.protocol for its requests
    transport = SSETransport()
    assert transport.accepts("text/event-stream")
    assert not transport.accepts("application/json")
    encode = json.dumps
    assert (
        transport.encode_next({"data": None}, encode)
        == 'event: next\r\ndata: {"data": null}\r\n\r\n'
    )
    assert transport.encode_complete() == "event: complete\r\ndata: \r\n\r\n"


CHAT_INPUT_VALUE: dict[str, Any] = {
    "model": "openrouter:a/b",
    "fallbacks": ["openrouter:c/d"],
    "messages": [
        {"role": "SYSTEM", "content": "Be terse."},
        {
            "role": "USER",
            "content": "Look",
            "attachments": [{"kind": "image", "url": "https://x/y.png", "name": None}],
        },
        {
            "role": "ASSISTANT",
            "content": "",
            "toolCalls": [{"id": "c1", "name": "f", "arguments": "{}"}],
            "reasoningDetails": [{"type": "text", "text": "hm"}],
        },
        {"role": "TOOL", "content": "42", "toolCallId": "c1"},
    ],
    "options": {
        "temperature": 0.5,
        "stop": ["\n"],
        "reasoning": {"effort": "LOW", "maxTokens": None},
        "responseFormat": {"type": "JSON_SCHEMA", "name": "n", "schema": {"type": "object"}},
        "tools": [{"name": "f", "parameters": {"type": "object"}}],
        "routing": {"order": ["p"], "maxPrice": {"prompt": 1.5}},
    },
    "sessionId": None,
}


async def test_convert_inputs_fast_builds_what_strawberrys_conversion_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The chat input, every input type in it, through a resolver: the values it gets
    with the planned conversion and with Strawberry's own are equal, lists copied."""
    received: list[object] = []

    @strawberry.type
    class Query:
        @strawberry.field
        def take(self, input: ChatInput) -> str:
            received.append(input)
            return "ok"

    schema = strawberry.Schema(query=Query)
    query = "query ($i: ChatInput!) { take(input: $i) }"
    variables = {"i": CHAT_INPUT_VALUE}
    convert_inputs_fast(schema)
    definition = ChatInput.__strawberry_definition__  # type: ignore[attr-defined]
    assert definition.from_input is not None
    planned = await schema.execute(query, variable_values=variables)
    for concrete in schema.schema_converter.type_map.values():
        if getattr(concrete.definition, "is_input", False):
            monkeypatch.setattr(concrete.definition, "from_input", None)
    own = await schema.execute(query, variable_values=variables)
    assert planned.errors is None and own.errors is None
    fast, strawberrys = received
    assert isinstance(fast, ChatInput) and isinstance(strawberrys, ChatInput)
    assert fast == strawberrys
    assert type(fast.messages[1].attachments[0]) is AttachmentInput  # type: ignore[index]
    assert fast.messages[0].role is ChatRole.SYSTEM
    assert fast.fallbacks is not CHAT_INPUT_VALUE["fallbacks"]
