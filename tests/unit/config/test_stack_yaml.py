"""config.stack_yaml: a stack file's YAML read as the Pulumi CLI reads it (go-yaml v3's resolve.go) and its values
as the CLI hands them to the program. The expected texts were recorded from the pinned CLI's `pulumi config
--json`; tests/e2e/test_stack_yaml_cli.py compares the two on the same files under the real CLI."""

from __future__ import annotations

import math

import pytest
import yaml

import config
from config import stack_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # booleans: YAML 1.2's, in three spellings; YAML 1.1's are text
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("False", False),
        ("yes", "yes"),
        ("No", "No"),
        ("on", "on"),
        ("OFF", "OFF"),
        ("y", "y"),
        ("tRUE", "tRUE"),
        # nulls
        ("", None),
        ("~", None),
        ("Null", None),
        ("nULL", "nULL"),
        # integers: Go's base prefixes, a leading 0 for octal, underscores ignored, uint64 beyond int64
        ("0", 0),
        ("-0", 0),
        ("+12", 12),
        ("0x10", 16),
        ("0x_10", 16),
        ("0o17", 15),
        ("017", 15),
        ("0b101", 5),
        ("-0b11", -3),
        ("1_000", 1000),
        ("1__0", 10),
        ("1_", 1),
        ("9223372036854775807", 2**63 - 1),
        ("18446744073709551615", 2**64 - 1),
        # floats
        ("1.0", 1.0),
        ("08", 8.0),
        (".5", 0.5),
        ("+.5", 0.5),
        ("1e3", 1000.0),
        ("0.1_0", 0.1),
        ("99999999999999999999", 1e20),
        # text: what looks like a number to YAML 1.1 or to Python, but not to go-yaml
        ("1:30", "1:30"),
        ("12e", "12e"),
        ("0x1p3", "0x1p3"),
        ("1e400", "1e400"),
        (".Nan", ".Nan"),
        ("._5", "._5"),
        ("-", "-"),
        ("infinity", "infinity"),
        ("_1", "_1"),
        ("1.0.0", "1.0.0"),
        ("10.20.0.4", "10.20.0.4"),
        ("<<", "<<"),
    ],
)
def test_plain_scalars_resolve_as_go_yaml_v3_does(text: str, value: object) -> None:
    resolved = stack_yaml.resolve_plain(text)
    assert resolved == value and type(resolved) is type(value), (text, resolved)


@pytest.mark.parametrize(("text", "sign"), [(".inf", 1), ("+.Inf", 1), ("-.INF", -1)])
def test_infinities_are_floats(text: str, sign: int) -> None:
    assert stack_yaml.resolve_plain(text) == sign * math.inf


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("2028-12-31", "2028-12-31 00:00:00 +0000 UTC"),
        ("2028-1-2", "2028-01-02 00:00:00 +0000 UTC"),
        ("2001-12-14 21:59:43.10", "2001-12-14 21:59:43.1 +0000 UTC"),
        ("2001-12-14T21:59:43.10Z", "2001-12-14 21:59:43.1 +0000 UTC"),
        ("2001-12-14t21:59:43-05:00", "2001-12-14 21:59:43 -0500 -0500"),
        ("2001-12-14T21:59:43,123456789999Z", "2001-12-14 21:59:43.123456789 +0000 UTC"),
        ("2024-02-29", "2024-02-29 00:00:00 +0000 UTC"),
        # not one of parseTimestamp's formats, or out of range: text
        ("2023-02-29", None),
        ("2028-13-01", None),
        ("2028-12-31T10:00:00", None),
        ("2028-12-31 10:00:00Z", None),
        ("2028-12-31T24:00:00Z", None),
        ("2001-12-14 21:59:43.10 -5", None),
        ("20281-12-31", None),
        ("2028-12-31x", None),
    ],
)
def test_timestamps_are_handed_over_as_gos_time_string(text: str, shown: str | None) -> None:
    assert stack_yaml.go_time(text) == shown
    assert stack_yaml.resolve_plain(text) == (shown if shown is not None else text)


def test_an_offset_of_the_local_zone_takes_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert stack_yaml.go_time("2001-12-14T21:59:43+00:00") == "2001-12-14 21:59:43 +0000 UTC"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("yaml_text", "engine"),
    [
        ("yes", "yes"),
        ("2028-12-31", "2028-12-31 00:00:00 +0000 UTC"),
        ("0x10", "16"),
        ("1.0", "1"),
        ("True", "true"),
        ("~", ""),
        ("", ""),
        (".5", "0.5"),
        ("99999999999999999999", "100000000000000000000"),
        ("'0x10'", "0x10"),
        ("!!str 123", "123"),
        ('!!int "12"', "12"),
        ("!!binary aGVsbG8=", "hello"),
        ("|\n    a\n    b", "a\nb\n"),
        (
            "{y: yes, t: True, d: 2028-12-31, f: 1.0, f2: 240.5, f3: 1e21, f4: 1.5e-7, h: 0x10, n: null, 3: three, "
            "true: k, big: 99999999999999999999}",
            '{"3":"three","big":100000000000000000000,"d":"2028-12-31 00:00:00 +0000 UTC","f":1,"f2":240.5,'
            '"f3":1e+21,"f4":1.5e-7,"h":16,"n":null,"t":true,"true":"k","y":"yes"}',
        ),
        ("[1, yes, 2028-01-01, '2028-01-01']", '[1,"yes","2028-01-01 00:00:00 +0000 UTC","2028-01-01"]'),
        ('{"<a&b>": "\\t"}', '{"\\u003ca\\u0026b\\u003e":"\\t"}'),
        ("{~: a}", '{"\\u003cnil\\u003e":"a"}'),
        ("{<<: {a: 1, b: 1}, b: 2}", '{"a":1,"b":2}'),
        ("{a: !foo bar, b: {secure: 1}}", '{"a":"bar","b":{"secure":1}}'),
    ],
)
def test_values_are_handed_over_as_the_cli_hands_them(yaml_text: str, engine: str) -> None:
    doc = stack_yaml.load(f"config:\n  image-gallery:x: {yaml_text}\n")
    assert stack_yaml.engine_value(doc["config"]["image-gallery:x"]) == engine


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("  a: 1\n  a: 2\n", "key 'a' is defined twice (first at line 2)"),
        ("  '1': a\n  1: b\n", "key '1' is defined twice (first at line 2)"),
        ("  1: a\n  1.0: b\n", "key '1' is defined twice (first at line 2)"),
        ("  a: !!bool yes\n", "cannot decode !!str `yes` as a !!bool"),
        ("  a: !!int 1.5\n", "cannot decode !!float `1.5` as a !!int"),
        ("  a: !!null x\n", "cannot decode !!str `x` as a !!null"),
        ("  a: !!binary '@@'\n", "!!binary value contains invalid base64 data"),
        ("  a: {b: [1, .inf]}\n", "a.b[1]: .inf is not a finite number; the Pulumi CLI refuses the whole stack file"),
        ("  a: -.inf\n", "json: unsupported value: -Inf"),
        ("  a: .NaN\n", "a: .NaN is not a finite number"),
    ],
)
def test_what_the_cli_refuses_is_refused_with_its_line(yaml_text: str, message: str, fast: bool) -> None:
    with pytest.raises(yaml.MarkedYAMLError) as raised:
        stack_yaml.load("config:\n" + yaml_text, fast=fast)
    assert message in str(raised.value.problem)
    mark = raised.value.problem_mark
    assert mark is not None and mark.line + 1 >= 2


def test_a_merged_key_may_be_overridden_and_a_quoted_merge_key_is_a_key() -> None:
    doc = stack_yaml.load("base: &b {a: 1, c: 3}\nx:\n  <<: *b\n  a: 2\ny: {'<<': 1}\n")
    assert doc["x"] == {"a": 2, "c": 3}
    assert doc["y"] == {"<<": 1}


def test_floats_are_written_as_go_writes_them() -> None:
    assert [stack_yaml.engine_json(f) for f in (1.0, -0.0, 0.5, 1e20, 1e21, 1.5e-7, 1e-6, 123.456)] == [
        "1",
        "-0",
        "0.5",
        "100000000000000000000",
        "1e+21",
        "1.5e-7",
        "0.000001",
        "123.456",
    ]
    # fmt's %v, for a mapping key that is a number
    assert [stack_yaml.go_key(k) for k in (1.5, 1e6, 123456.0, 1e-5, None, True, 3)] == [
        "1.5",
        "1e+06",
        "123456",
        "1e-05",
        "<nil>",
        "true",
        "3",
    ]
    with pytest.raises(ValueError, match=r"unsupported value: \+Inf"):
        stack_yaml.engine_json(math.inf)


def test_a_secure_leaf_is_one_key_holding_text() -> None:
    assert stack_yaml.is_secure({"secure": "v1:abc"})
    assert not stack_yaml.is_secure({"secure": 1})
    assert not stack_yaml.is_secure({"secure": "v1:abc", "other": 1})


# --- Pulumi.yaml's declared types, as the CLI checks them before the program runs --------------------------------

DECLARED = {
    "marketplace": {"type": "boolean", "default": True},
    "parallelHosts": {"type": "integer", "default": 0},
    "galleryDescription": {"type": "string", "default": ""},
    "regions": {"type": "array", "items": {"type": "string"}},
    "untyped": {"default": "x"},
    "azure-native:location": {"type": "string"},
}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("marketplace", True),
        ("marketplace", "true"),
        ("marketplace", "false"),
        ("parallelHosts", 4),
        ("parallelHosts", 4.0),
        ("parallelHosts", "+4"),
        ("parallelHosts", "004"),
        ("galleryDescription", "yes"),
        ("galleryDescription", 2028),
        ("regions", ["westeurope"]),
        ("untyped", [1]),
        ("azure-native:location", "westeurope"),
    ],
)
def test_values_the_cli_accepts_for_a_declared_type(key: str, value: object) -> None:
    full = key if ":" in key else f"image-gallery:{key}"
    assert config.declared_type_problems(DECLARED, {full: value}, []) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("marketplace", "yes", "marketplace: 'yes' is not of type boolean, as Pulumi.yaml declares it; write true or"),
        ("marketplace", "True", "marketplace: 'True' is not of type boolean"),
        ("marketplace", 1, "marketplace: '1' is not of type boolean"),
        ("parallelHosts", 2.5, "parallelHosts: '2.5' is not of type integer, as Pulumi.yaml declares it; write a"),
        ("parallelHosts", "0x4", "parallelHosts: '0x4' is not of type integer"),
        ("parallelHosts", "9223372036854775808", "parallelHosts: '9223372036854775808' is not of type integer"),
        ("galleryDescription", {"a": 1}, "galleryDescription: a mapping is not of type string"),
        ("regions", "westeurope", "regions: 'westeurope' is not of type array<string>"),
        ("regions", [1], "regions: a list is not of type array<string>"),
        ("azure-native:location", ["westeurope"], "azure-native:location: a list is not of type string"),
    ],
)
def test_values_the_cli_refuses_for_a_declared_type(key: str, value: object, message: str) -> None:
    full = key if ":" in key else f"image-gallery:{key}"
    (found,) = config.declared_type_problems(DECLARED, {full: value}, [])
    assert found.startswith(message), found


def test_an_encrypted_value_is_not_type_checked_offline() -> None:
    assert config.declared_type_problems(DECLARED, {"image-gallery:marketplace": "[secret]"}, []) != []
    assert (
        config.declared_type_problems(
            DECLARED, {"image-gallery:marketplace": "[secret]"}, ["image-gallery:marketplace"]
        )
        == []
    )


def test_not_a_number_in_each_spelling_go_yaml_knows() -> None:
    assert all(math.isnan(stack_yaml.resolve_plain(text)) for text in (".nan", ".NaN", ".NAN"))


@pytest.mark.parametrize("text", ["2028-12-31 ", "2028-12-31Tnoon", "2028-12-31T10:00Z", "2028-12-31 10:00:00 UTC"])
def test_a_date_followed_by_something_else_is_text(text: str) -> None:
    assert stack_yaml.go_time(text) is None
    assert stack_yaml.resolve_plain(text) == text


def test_zero_and_infinities_as_go_writes_them() -> None:
    assert [stack_yaml.engine_json(f) for f in (0.0, 1e-7)] == ["0", "1e-7"]
    assert [stack_yaml.go_key(k) for k in (math.inf, -math.inf, math.nan, 0.0, "x")] == [
        "+Inf",
        "-Inf",
        "NaN",
        "0",
        "x",
    ]


@pytest.mark.parametrize(
    ("text", "sign"),
    [(s + v, -1 if s == "-" else 1) for s in ("", "+", "-") for v in (".inf", ".Inf", ".INF")],
)
def test_every_spelling_of_infinity_go_yaml_knows(text: str, sign: int) -> None:
    assert stack_yaml.resolve_plain(text) == sign * math.inf


@pytest.mark.parametrize("month", range(1, 13))
def test_the_last_day_of_each_month_and_not_one_more(month: int) -> None:
    last = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[month - 1]
    assert stack_yaml.go_time(f"2027-{month:02d}-{last}") == f"2027-{month:02d}-{last} 00:00:00 +0000 UTC"
    assert stack_yaml.go_time(f"2027-{month:02d}-{last + 1}") is None


@pytest.mark.parametrize(("year", "leap"), [(2024, True), (2000, True), (2100, False), (2023, False)])
def test_february_29th_in_leap_years_only(year: int, leap: bool) -> None:
    assert (stack_yaml.go_time(f"{year}-02-29") is not None) is leap


def test_an_explicit_float_tag_makes_an_integer_a_float() -> None:
    value = stack_yaml.resolve_tagged("tag:yaml.org,2002:float", "1")
    assert value == 1.0 and isinstance(value, float)


def test_booleans_as_mapping_keys_are_their_go_text() -> None:
    assert [stack_yaml.go_key(k) for k in (False, True)] == ["false", "true"]


def test_a_node_with_a_tag_of_its_own_is_read_by_its_kind() -> None:
    doc = stack_yaml.load("a: !foo {b: 1}\nc: !bar [1, yes]\nd: !baz text\n")
    assert doc == {"a": {"b": 1}, "c": [1, "yes"], "d": "text"}
