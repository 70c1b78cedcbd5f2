from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from graphql.language.parser import Parser
from graphql.validation import ValidationContext


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many documents graphql-core parsed and validated, whoever asked: every parse
    runs `Parser.parse_document`, every validation builds a `ValidationContext`."""
    done: Counter[str] = Counter()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            done[name] += 1
            return method(*args, **kwargs)

        return call

    monkeypatch.setattr(Parser, "parse_document", counted("parse", Parser.parse_document))
    monkeypatch.setattr(
        ValidationContext, "__init__", counted("validate", ValidationContext.__init__)
    )
    return done
