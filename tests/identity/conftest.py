"""Shared assertion for the identity tests: a refusal has the right class and leaks nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from resolvers.errors import CredentialError


@pytest.fixture
def assert_refused() -> Callable[..., CredentialError]:
    """Call `call`, expect `expected`, and check the message hides every `sensitive` string.

    Besides each whole sensitive string, every dot-separated segment longer than 8
    characters is checked too, so echoing only part of a token also fails.
    """

    def check(
        expected: type[CredentialError], call: Callable[[], object], *sensitive: str
    ) -> CredentialError:
        with pytest.raises(CredentialError) as info:
            call()
        error = info.value
        assert type(error) is expected, f"{type(error).__name__}: {error}"
        message = str(error)
        assert message
        for value in filter(None, sensitive):
            pieces = [value, *(part for part in value.split(".") if len(part) > 8)]
            for piece in pieces:
                assert piece not in message
        return error

    return check
