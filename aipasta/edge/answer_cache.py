"""Serialized answers of public catalog queries, kept per document, variables and
catalog version, and revalidated over GET with `ETag` / `If-None-Match`.

A frontend polls the same catalog query again and again, and each full `modelCatalog`
costs an execution and a JSON dump of every model. Here an answer is kept as the bytes
the normal path produced, under (query text, operation name, variables, catalog
version), and a repeat is answered from them without running Strawberry at all.

What may be kept (`public_operation`): a query whose root fields are all catalog fields
(`models`, `model`, `modelCatalog`) and, under `modelCatalog`, only what follows from the
model lists alone. `cached`, `stale`, `fetchedAt`, `expiresAt` and `providers` change with
time and per request, `health` is live, and every other field depends on the user: an
operation selecting any of them always runs. An answer with errors is never kept. None
of the allowed fields reads the user, so an answer can be shared by everyone.

The catalog version (`Catalog.version`) is new whenever a provider's list changes and
stays after a refresh that brought the same list back. An answer is kept only when the
version did not change while it ran; before a kept one is sent, the catalog view is
asked for, so a list that is due is refreshed exactly as without this cache (an
operation never kept, which may yet be refused unexecuted, does not touch the catalog).
The edge (rate limits) runs before the view, and the request id header is set as for
any answer.

A repeat is answered even before Strawberry reads the request (`early_reply`): when the
request is a plain GET or JSON POST that Strawberry would run as that one operation and
an answer is kept for it, the answer goes out without Strawberry's request parsing, its
context or its sign-in lookup (the edge signed in already, for the rate limits). None of
that changes a kept answer: everyone gets it, a refused credential too (the fields do not
read the user). Anything else (a miss, a stream, a batch, a body Strawberry would refuse,
a client already gone) goes the normal way, with what was read of the body replayed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import weakref
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import DocumentNode, FieldNode, GraphQLError, OperationType, get_operation_ast
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.types import ExecutionResult

from aipasta.edge.headers import first_headers
from aipasta.edge.middleware import read_body, replay
from aipasta.edge.request_ids import REQUEST_ID_HEADER, request_id
from resolvers.catalog.service import Catalog
from resolvers.context import Context, Services
from schema.query_cache import cached_document
from schema.strawberry_seams import AsyncHTTPRequestAdapter, HTTPException

# Root fields whose answer is the same for everyone while the model lists are.
PUBLIC_ROOT_FIELDS = frozenset({"models", "model", "modelCatalog", "__typename"})
# The `modelCatalog` fields computed from the model lists alone.
CATALOG_LIST_FIELDS = frozenset(
    {"all", "multimodal", "textOnly", "free", "paid", "byProvider", "stats", "__typename"}
)
ANSWER_ENTRIES = 256
VERDICT_ENTRIES = 256
# Longer query texts simply run: hashing one must stay cheap next to running it.
MAX_QUERY_CHARS = 16_384
# Clients revalidate every time: a catalog change shows at the next poll.
CACHE_CONTROL = "no-cache"


def public_operation(document: DocumentNode, operation_name: str | None) -> bool:
    """Whether the operation's answer depends on nothing but its variables and the
    model lists. Fragments at the two checked levels count as not public (simply run)."""
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return False
    for root in operation.selection_set.selections:
        if not isinstance(root, FieldNode) or root.name.value not in PUBLIC_ROOT_FIELDS:
            return False
        if root.name.value == "modelCatalog" and root.selection_set is not None:
            for field in root.selection_set.selections:
                if not isinstance(field, FieldNode) or field.name.value not in CATALOG_LIST_FIELDS:
                    return False
    return True


def matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of an `If-None-Match` list with our entity tag."""
    if not if_none_match:
        return False
    bare = etag.removeprefix("W/")
    tags = (tag.strip() for tag in if_none_match.split(","))
    return any(tag == "*" or tag.removeprefix("W/") == bare for tag in tags)


@dataclass(frozen=True)
class Answer:
    body: bytes
    etag: str


@dataclass(frozen=True)
class Reply:
    """What one request gets from the cache: the answer, or only its tag (304)."""

    answer: Answer
    not_modified: bool

    def response(self) -> Response:
        headers = {"ETag": self.answer.etag, "Cache-Control": CACHE_CONTROL}
        if self.not_modified:
            return Response(status_code=304, headers=headers)
        return Response(self.answer.body, media_type="application/json", headers=headers)


Key = tuple[int, bytes]


class AnswerCache:
    """An LRU of answers bounded in entries and bytes, and of which query texts are
    public. Per view (so per schema and settings); single event loop, no locking."""

    def __init__(self, *, max_bytes: int, max_tokens: int) -> None:
        self.max_bytes = max_bytes
        self._max_tokens = max_tokens
        self._answers: OrderedDict[Key, Answer] = OrderedDict()
        self._bytes = 0
        self._verdicts: OrderedDict[bytes, bool] = OrderedDict()
        # The reply execute_single chose, for create_response of the same request.
        self._replies: weakref.WeakKeyDictionary[Response, Reply] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self._answers)

    def document_key(self, request_data: GraphQLRequestData) -> bytes | None:
        """A digest of what the answer is a function of, besides the catalog; None when
        the operation is not public (decided once per query text)."""
        query, variables = request_data.query, request_data.variables
        if self.max_bytes <= 0 or not query or len(query) > MAX_QUERY_CHARS:
            return None
        if variables is not None and not isinstance(variables, Mapping):
            return None
        name = request_data.operation_name or ""
        digest = hashlib.blake2b(query.encode("utf-8", "surrogatepass"), digest_size=16)
        digest.update(b"\0" + name.encode("utf-8", "surrogatepass"))
        verdict_key = digest.digest()
        verdict = self._verdicts.get(verdict_key)
        if verdict is None:
            verdict = self._decide(query, request_data.operation_name)
            self._verdicts[verdict_key] = verdict
            if len(self._verdicts) > VERDICT_ENTRIES:
                self._verdicts.popitem(last=False)
        if not verdict:
            return None
        # ASCII-escaped: a lone surrogate in a value is encodable (the guards refuse it).
        canonical = json.dumps(variables or {}, sort_keys=True, separators=(",", ":"))
        digest.update(b"\0" + canonical.encode())
        return digest.digest()

    def _decide(self, query: str, operation_name: str | None) -> bool:
        try:
            document = cached_document(query, self._max_tokens)
        except GraphQLError:
            return False  # Strawberry reports it
        return public_operation(document, operation_name)

    def get(self, key: Key) -> Answer | None:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: Key, body: bytes) -> Answer:
        answer = Answer(body, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"')
        size = len(body)
        if size > self.max_bytes:
            return answer
        old = self._answers.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._answers[key] = answer
        self._bytes += size
        while self._bytes > self.max_bytes or len(self._answers) > ANSWER_ENTRIES:
            _, evicted = self._answers.popitem(last=False)
            self._bytes -= len(evicted.body)
        return answer

    def hold(self, sub_response: Response, reply: Reply) -> None:
        self._replies[sub_response] = reply

    def take(self, sub_response: Response) -> Reply | None:
        return self._replies.pop(sub_response, None)


_ID_NAME = REQUEST_ID_HEADER.lower().encode()
_EARLY_HEADERS = frozenset({b"accept", b"content-type", b"if-none-match"})


class CachingGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view answering public catalog queries from `answers` (set by
    the subclass's constructor)."""

    answers: AnswerCache

    async def early_reply(self, scope: Scope, receive: Receive) -> tuple[Response | None, Receive]:
        """The kept answer for this HTTP request, read as Strawberry would read it, or
        None; and the `receive` to go on with (what was read of the body first)."""
        read: deque[Message] = deque()
        reply = await self._early_reply(scope, receive, read)
        if reply is not None or not read:
            return reply, receive
        return None, replay(read, receive)

    async def _early_reply(
        self, scope: Scope, receive: Receive, read: deque[Message]
    ) -> Response | None:
        services = scope.get("state", {}).get("services")
        if self.answers.max_bytes <= 0 or not isinstance(services, Services):
            return None
        headers = first_headers(scope, _EARLY_HEADERS)
        if self._get_stream_transport_from_headers({"accept": headers.get(b"accept", "")}):
            return None  # a stream: GraphQL over SSE
        method = scope["method"]
        data: Any
        try:
            if method == "GET":
                params = QueryParams(scope["query_string"])
                if params.get("query") is None:
                    return None  # GraphiQL's page, or Strawberry's refusal
                data = self.parse_query_params(params)
            elif method == "POST":
                content_type = headers.get(b"content-type", "")
                if "application/json" not in parse_content_type(content_type)[0]:
                    return None
                # The edge has capped the body already.
                read.extend(await read_body(receive, sys.maxsize) or ())
                if read[-1]["type"] != "http.request":
                    return None  # the client went away
                body = b"".join(m.get("body", b"") for m in read)
                data = self.parse_json(body)
            else:
                return None
        except HTTPException:
            return None  # Strawberry refuses it the same way
        request_data = _request_data(data)
        if request_data is None:
            return None
        document_key = self.answers.document_key(request_data)
        if document_key is None:
            return None
        catalog: Catalog = services.catalog
        version = catalog.version
        answer = self.answers.get((version, document_key))
        if answer is None:
            return None
        # As execute_single does for a kept answer: refresh what is due.
        await catalog.view()
        if catalog.version != version:
            answer = self.answers.get((catalog.version, document_key))
            if answer is None:
                return None  # the new lists' answer is made the normal way
        not_modified = method == "GET" and matches(headers.get(b"if-none-match"), answer.etag)
        response = Reply(answer, not_modified).response()
        # Where get_context puts it, on the sub-response create_response copies.
        response.headers.raw.append((_ID_NAME, request_id(scope).encode("latin-1")))
        return response

    async def execute_single(  # noqa: PLR0917 - Strawberry's signature
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        document_key = self.answers.document_key(request_data)
        if document_key is None:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        catalog: Catalog = context.services.catalog
        version = catalog.version
        answer = self.answers.get((version, document_key))
        if answer is not None:
            # A kept answer stands for a valid operation, which may ask the catalog (an
            # operation to be refused must not): refresh what is due, as it would.
            await catalog.view()
            if catalog.version != version:
                version = catalog.version
                answer = self.answers.get((version, document_key))
        if answer is None:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
            # A list that changed while this ran may be mixed into the answer.
            if result.errors or catalog.version != version:
                return result
            body = self.encode_json(await self.process_result(request, result))
            answer = self.answers.put(
                (version, document_key), body if isinstance(body, bytes) else body.encode()
            )
        not_modified = request_adapter.method == "GET" and matches(
            request.headers.get("if-none-match"), answer.etag
        )
        self.answers.hold(sub_response, Reply(answer, not_modified))
        return ExecutionResult(data=None, errors=None)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        reply = self.answers.take(sub_response)
        if reply is None:
            return super().create_response(response_data, sub_response)
        response = reply.response()
        response.headers.raw.extend(sub_response.headers.raw)
        return response


def _request_data(data: object) -> GraphQLRequestData | None:
    """One operation's request data, when Strawberry would take `data` as that (not a
    batch, nothing it refuses)."""
    if not isinstance(data, dict):
        return None
    query, variables = data.get("query"), data.get("variables")
    extensions, name = data.get("extensions"), data.get("operationName")
    if not isinstance(query, str) or not isinstance(variables, (dict, type(None))):
        return None
    if not isinstance(extensions, (dict, type(None))) or not isinstance(name, (str, type(None))):
        return None
    return GraphQLRequestData(
        query=query,
        variables=variables,
        operation_name=name,
        extensions=extensions,
        protocol="http",
    )
