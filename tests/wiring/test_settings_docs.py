"""`.env.example`, the README's settings table and `aipasta settings` agree with the model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aipasta.cli import main, settings_table
from aipasta.settings import SettingDoc, setting_docs

ROOT = Path(__file__).resolve().parents[2]
# `NAME=value` or `# NAME=value`: one setting of .env.example (other comments are prose).
ENTRY = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$")


def _docs() -> dict[str, SettingDoc]:
    return {doc.env_name: doc for doc in setting_docs()}


def test_every_setting_has_a_description() -> None:
    assert [doc.env_name for doc in setting_docs() if not doc.description.strip()] == []


def test_env_example_lists_every_setting_once_with_its_default() -> None:
    entries: dict[str, list[str]] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := ENTRY.match(line):
            entries.setdefault(match[1], []).append(match[2])
    docs = _docs()
    assert sorted(set(entries) - set(docs)) == []  # no unknown or misspelled names
    assert sorted(set(docs) - set(entries)) == []  # none missing
    assert {name: values for name, values in entries.items() if len(values) > 1} == {}
    assert {name: values[0] for name, values in entries.items()} == {
        name: doc.default for name, doc in docs.items()
    }


def test_readme_settings_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    # Regenerate with `aipasta settings --markdown`.
    assert table == settings_table()


def test_settings_command_lists_every_setting_and_no_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-never-printed")
    monkeypatch.setenv("AIPASTA_JWT_SECRET", "jwt-never-printed")
    assert main(["settings"]) == 0
    shown = capsys.readouterr().out
    assert "never-printed" not in shown
    listed = [line.split("=", 1)[0].split(" ", 1)[0] for line in shown.splitlines()]
    names = [name for name in listed if name]
    assert names == [doc.env_name for doc in setting_docs()]
    assert "AIPASTA_PORT=8000\n" in shown
    assert "OPENROUTER_API_KEY (secret)\n" in shown
    assert "The frontend's NextAuth secret" in shown
