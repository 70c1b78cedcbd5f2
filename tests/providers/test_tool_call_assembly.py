"""Whole tool calls from the fragments a stream delivers them in."""

from __future__ import annotations

import json

from providers.chat import ToolCall, ToolCallAssembler, ToolCallFragment

WEATHER = json.dumps({"city": "Zürich", "unit": "celsius", "note": 'a "quoted" word'})
TIME = json.dumps({"zone": "Europe/Zurich"})


def test_two_calls_interleaved_and_split_at_every_character_come_out_exactly() -> None:
    assembler = ToolCallAssembler()
    assembler.add(
        [
            ToolCallFragment(index=0, id="call_a", name="get_weather"),
            ToolCallFragment(index=1, id="call_b", name="get_time"),
        ]
    )
    pieces = max(len(WEATHER), len(TIME))
    for i in range(pieces):
        # One character of each call per delta, the second call first.
        assembler.add(
            [
                ToolCallFragment(index=1, arguments=TIME[i : i + 1]),
                ToolCallFragment(index=0, arguments=WEATHER[i : i + 1]),
            ]
        )

    assert assembler.calls() == (
        ToolCall(id="call_a", name="get_weather", arguments=WEATHER),
        ToolCall(id="call_b", name="get_time", arguments=TIME),
    )


def test_arguments_are_passed_through_unparsed_even_when_not_json() -> None:
    assembler = ToolCallAssembler()
    assembler.add([ToolCallFragment(index=0, id="c1", name="f", arguments='{"a": ')])
    assembler.add([ToolCallFragment(index=0, arguments="1,,}")])

    assert assembler.calls() == (ToolCall(id="c1", name="f", arguments='{"a": 1,,}'),)


def test_a_new_id_on_a_reused_index_starts_another_call() -> None:
    assembler = ToolCallAssembler()
    assembler.add([ToolCallFragment(index=0, id="c1", name="f", arguments="{}")])
    assembler.add([ToolCallFragment(index=0, id="c2", name="g", arguments='{"x":1}')])
    assembler.add([ToolCallFragment(index=0, arguments="")])

    assert assembler.calls() == (
        ToolCall(id="c1", name="f", arguments="{}"),
        ToolCall(id="c2", name="g", arguments='{"x":1}'),
    )


def test_a_repeated_name_or_id_does_not_rename_or_split_the_call() -> None:
    assembler = ToolCallAssembler()
    assembler.add([ToolCallFragment(index=0, id="c1", name="f", arguments="{")])
    assembler.add([ToolCallFragment(index=0, id="c1", name="f", arguments="}")])

    assert assembler.calls() == (ToolCall(id="c1", name="f", arguments="{}"),)


def test_no_fragments_no_calls_and_a_call_without_an_id_gets_one() -> None:
    assembler = ToolCallAssembler()
    assert not assembler
    assert assembler.calls() == ()
    assembler.add([ToolCallFragment(index=3, name="f", arguments="{}")])
    assert assembler
    assert assembler.calls() == (ToolCall(id="call_0", name="f", arguments="{}"),)
