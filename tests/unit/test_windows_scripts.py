"""The script protocol of hooks/windows/scripts.py, without a guest: what is sent, and how the guest's answer is read.

The guest is not trusted to send the types we expect (PowerShell 5.1 unrolls one-element arrays, sends null for a
missing value, numbers as floats); these readers are what keeps a strange answer from passing a pre-check."""

from __future__ import annotations

import base64

import pytest

from hooks.windows.scripts import (
    CMD_LINE_LIMIT,
    POWERSHELL,
    GuestScript,
    clean_clixml,
    fact_bool,
    fact_dict_list,
    fact_int,
    fact_int_list,
    fact_list,
    fact_str,
    fact_str_list,
    parse_result_line,
    squash,
    tail,
)


def sent_text(script: GuestScript) -> str:
    command = script.command
    assert command.startswith(POWERSHELL)
    return base64.b64decode(command[len(POWERSHELL) :]).decode("utf-16-le")


def test_the_command_line_is_powershell_running_the_script_file_behind_its_prelude() -> None:
    script = GuestScript("start-sysprep", {"Mode": "vm", "ExtraArgs": ("/mode:vm", "/x"), "TailLines": 3})
    text = sent_text(script)
    # parameters in a fixed (sorted) order, each a literal PowerShell cannot run as code, then the file unmodified
    assert text.startswith("$ExtraArgs = @('/mode:vm', '/x')\n$Mode = 'vm'\n$TailLines = 3\n")
    assert text.endswith(GuestScript("start-sysprep").text)
    assert GuestScript("start-sysprep").text.startswith("# image-gallery-script: start-sysprep\n")
    assert GuestScript("image-state", {"TailLines": 0}).text.startswith("$TailLines = 0\n#")
    assert GuestScript("image-state", {"Names": ()}).text.startswith("$Names = @()\n#")


def test_a_script_too_long_for_one_winrs_command_line_is_refused_not_truncated() -> None:
    # about 6 base64 characters per parameter character: this prelude alone is past cmd.exe's 8191
    long = GuestScript("image-state", {"Names": ("/abcdefghijklmnopqrstuvwxyz",) * 60})
    with pytest.raises(ValueError, match="too long for one WinRS command line"):
        _ = long.command
    assert len(GuestScript("image-state").command) < CMD_LINE_LIMIT


@pytest.mark.parametrize(
    "params",
    [
        {"Mode": "vm'; Remove-Item C:\\ -Recurse; '"},
        {"Mode": "$(calc)"},
        {"Names": ("ok", "not ok")},
        {"mode": "vm"},  # parameter names are PascalCase words: nothing else reaches the prelude
        {"Tail-Lines": 1},
    ],
)
def test_the_prelude_refuses_anything_but_whitelisted_names_and_values(params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _ = GuestScript("image-state", params).text  # type: ignore[arg-type]


def test_a_boolean_is_not_a_script_parameter() -> None:
    # True would become 1 in PowerShell only by accident of int(True); the scripts take no switches
    with pytest.raises(TypeError):
        _ = GuestScript("image-state", {"Quiet": True}).text


@pytest.mark.parametrize(
    ("stdout", "facts"),
    [
        ('{"a":1}', {"a": 1}),
        ('progress\r\n{"a":1}\r\n', {"a": 1}),
        ('{"first":1}\n  {"last":2}  \ntrailing words\n', {"last": 2}),  # the last JSON line wins
        ("", None),
        ("no json here\n", None),
        ("{not json\n", None),
        ("[1, 2]\n", None),
        ('{"a":1}\n{"b":\n', None),  # the last line is broken: not an older line instead
    ],
)
def test_the_facts_are_the_last_json_object_line(stdout: str, facts: dict[str, object] | None) -> None:
    assert parse_result_line(stdout) == facts


ERROR_CLIXML = (
    '#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
    '<Obj S="progress" RefId="0"><MS><PR N="Record"><AV>Preparing modules for first use.</AV></PR></MS></Obj>'
    '<S S="Error">Get-Item : Access is denied_x000D__x000A_</S><S S="Error">at line 3_x000D__x000A_</S>'
    '<S S="Warning">ignored</S></Objs>'
)


def test_powershell_errors_are_read_out_of_clixml_and_progress_records_dropped() -> None:
    assert clean_clixml(ERROR_CLIXML) == "Get-Item : Access is denied\nat line 3"
    second = '#< CLIXML\r\n<Objs xmlns="http://schemas.microsoft.com/powershell/2004/04"><S S="Error">again</S></Objs>'
    assert clean_clixml(ERROR_CLIXML + second) == "Get-Item : Access is denied\nat line 3\nagain"
    progress_only = ERROR_CLIXML.split('<S S="Error">')[0] + "</Objs>"
    assert clean_clixml(progress_only) == ""


@pytest.mark.parametrize(
    "stderr",
    [
        "  plain error text\r\n",
        "#< CLIXML\r\nthis is not xml\n",
        '#< CLIXML\r\n<!DOCTYPE x [<!ENTITY a "b">]><Objs><S S="Error">&a;</S></Objs>',
    ],
)
def test_stderr_that_is_not_clixml_is_shown_as_it_came(stderr: str) -> None:
    assert clean_clixml(stderr) == stderr.strip()


def test_facts_of_the_wrong_type_read_as_nothing_rather_than_passing() -> None:
    facts = {
        "text": "On",
        "number_as_text": 5,
        "null": None,
        "yes": True,
        "truthy": "true",
        "count": 3,
        "float_count": 2.0,
        "bool_count": True,
        "text_count": "4",
    }
    assert fact_str(facts, "text") == "On"
    assert fact_str(facts, "number_as_text") == "5"
    assert fact_str(facts, "null") == "" and fact_str(facts, "absent") == ""
    assert fact_bool(facts, "yes") is True
    assert fact_bool(facts, "truthy") is False and fact_bool(facts, "absent") is False
    assert fact_int(facts, "count") == 3 and fact_int(facts, "float_count") == 2
    assert fact_int(facts, "bool_count") == 0 and fact_int(facts, "text_count") == 0
    assert fact_int(facts, "absent") == 0 and fact_int(facts, "null") == 0


def test_a_one_element_array_unrolled_by_powershell_still_reads_as_a_list() -> None:
    assert fact_list({"v": "RdAgent"}, "v") == ["RdAgent"]
    assert fact_list({"v": ["a", "b"]}, "v") == ["a", "b"]
    assert fact_list({"v": None}, "v") == [] and fact_list({}, "v") == []
    assert fact_list({"v": 0}, "v") == [0] and fact_list({"v": ""}, "v") == [""]
    assert fact_str_list({"v": ["a", None, 3]}, "v") == ["a", "3"]
    assert fact_str_list({"v": "DHCP"}, "v") == ["DHCP"]
    assert fact_int_list({"v": [1, 2.0, "3", True, None]}, "v") == [1, 2]
    assert fact_int_list({"v": 4242}, "v") == [4242]
    assert fact_dict_list({"v": [{"a": 1}, "x", None]}, "v") == [{"a": 1}]
    assert fact_dict_list({"v": {"a": 1}}, "v") == [{"a": 1}]


@pytest.mark.parametrize(
    ("text", "same_as"),
    [("Protection On", "protectionon"), ("Fully_Decrypted", "fullydecrypted"), ("Fully-Decrypted\t", "fullydecrypted")],
)
def test_states_compare_without_case_spaces_or_separators(text: str, same_as: str) -> None:
    assert squash(text) == same_as


def test_tail_keeps_the_last_lines() -> None:
    assert tail("\n a\nb\nc\n\n", 2) == "b\nc"
    assert tail("one", 5) == "one"
