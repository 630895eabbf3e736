"""A stack file's YAML read as the Pulumi CLI reads it, and its config values as the CLI hands them to the program.

The CLI parses `Pulumi.yaml` and `Pulumi.<stack>.yaml` with go-yaml v3, whose scalars follow YAML 1.2's core schema
with a few YAML 1.1 leftovers (github.com/go-yaml/yaml, branch v3, resolve.go: `resolveTable`, `resolveMap`,
`resolve()` and `parseTimestamp()`). PyYAML's SafeLoader reads YAML 1.1, and the two disagree on plain scalars that
users write every day:

- `yes`, `no`, `on`, `off` (any case) are text to the CLI; only `true`/`True`/`TRUE` and `false`/`False`/`FALSE`
  are booleans;
- `0x10`, `0o17`, `017` (octal), `0b101`, `1_000` are integers, `1e3`, `08` and `.5` floats, `1:30` is text (no
  base-60 numbers);
- a date or date-time (`2028-12-31`, `2001-12-14T21:59:43.10-05:00`) becomes Go's `time.Time`, which the CLI hands
  to the program as its `String()`: `2028-12-31 00:00:00 +0000 UTC`;
- a key written twice in one mapping (the same text) is an error.

Pulumi then turns each `config:` value into what the program receives (sdk/go/common/resource/config/object.go,
`MarshalString` and `unmarshalObject`): text as written, a boolean or number as Go's JSON encoding of it (`1.0` is
`1`), a list or mapping as Go's JSON (keys sorted, `<>&` escaped, keys that are not text formatted with `%v`), a
value with nothing after the colon as `""`. A number that is not finite (`.inf`, `.nan`) cannot be JSON, and the
CLI refuses the whole file for it.

`load` reads a YAML document so; `engine_value` renders one `config:` value as the program receives it.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import math
import re
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import yaml
from yaml.constructor import ConstructorError

GO_YAML_RESOLVE = "https://github.com/go-yaml/yaml/blob/v3/resolve.go"
"""The rules this module follows, for the messages and the tests."""

_PLAIN = "tag:image-gallery.invalid,2026:go-yaml-plain"
"""The tag this reader gives every untagged plain scalar: its value is decided by `resolve_plain`, not PyYAML."""
_MERGE = "tag:yaml.org,2002:merge"
_STD = "tag:yaml.org,2002:"

# resolve.go's resolveMap: the plain scalars decided by a table lookup.
_KEYWORDS: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
# resolve.go's resolveTable: the first character says which rules may apply ('S' sign, 'D' digit, 'M' map only).
_HINTS = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M")}
_HINTS["."] = "."
# resolve.go's yamlStyleFloat (applied after underscores are removed).
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# strconv.ParseFloat of a value starting with '.' (no underscores: Go allows them only after a base prefix).
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
# strconv.ParseInt(s, 0, 64) / ParseUint(s, 0, 64): a base prefix, or a leading 0 for octal.
_GO_INT = re.compile(
    r"(?P<sign>[+-]?)(?:0[xX](?P<hex>[0-9a-fA-F]+)|0[oO](?P<oct>[0-7]+)|0[bB](?P<bin>[01]+)|(?P<dec>0[0-7]*|[1-9][0-9]*))"
)
# parseTimestamp's formats (time.Parse layouts "2006-1-2T15:4:5.999999999Z07:00" and its lower-case t,
# "2006-1-2 15:4:5.999999999" and "2006-1-2"): the zone is required after T/t and absent after a space.
_TIMESTAMP = re.compile(r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})(?:(?P<t>[Tt])|(?P<sp> ))?")
_CLOCK = re.compile(r"(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})(?:[.,](?P<frac>[0-9]+))?")
_ZONE = re.compile(r"Z|(?P<sign>[+-])(?P<zh>[0-9]{2}):(?P<zm>[0-9]{2})")
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_INT64 = 2**63
_UINT64 = 2**64


class NonFinite(float):
    """`.inf`, `-.inf` or `.nan` as go-yaml reads it, with where it was written: Go's JSON encoder refuses it, so
    the CLI refuses the whole stack file."""

    mark: yaml.Mark | None = None
    text: str = ""


def resolve_plain(text: str) -> Any:
    """The value go-yaml v3 gives an untagged plain scalar (resolve.go `resolve("", in)`): bool, None, int, float,
    or text; a timestamp becomes the text Pulumi hands over for Go's `time.Time` (`go_time`)."""
    return _resolve(text, timestamps=True)


def _resolve(text: str, timestamps: bool) -> Any:
    """resolve.go's `resolve`: `timestamps` only for an untagged scalar or an explicit !!timestamp."""
    hint = _HINTS.get(text[:1], "N" if text == "" else "")
    if not hint:
        return text
    if text in _KEYWORDS:
        return _KEYWORDS[text]
    if hint == ".":
        if _DOT_FLOAT.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
        return text
    if hint in ("D", "S"):
        stamp = go_time(text) if timestamps else None
        if stamp is not None:
            return stamp
        plain = text.replace("_", "")
        integer = _go_int(plain)
        if integer is not None:
            return integer
        if _YAML_FLOAT.fullmatch(plain):
            number = float(plain)
            if math.isfinite(number):  # strconv.ParseFloat refuses an overflow (ErrRange): the text stays text
                return number
    return text


def _go_int(plain: str) -> int | None:
    """strconv.ParseInt(plain, 0, 64), else ParseUint(plain, 0, 64) (no sign), else None."""
    m = _GO_INT.fullmatch(plain)
    if m is None:
        return None
    if m["hex"] is not None:
        value = int(m["hex"], 16)
    elif m["oct"] is not None:
        value = int(m["oct"], 8)
    elif m["bin"] is not None:
        value = int(m["bin"], 2)
    else:
        value = int(m["dec"], 8) if m["dec"].startswith("0") else int(m["dec"])
    if m["sign"] == "-":
        return -value if value <= _INT64 else None
    if value < _INT64 or (not m["sign"] and value < _UINT64):
        return value
    return None


def go_time(text: str) -> str | None:
    """go-yaml's parseTimestamp(text), rendered as Go's `time.Time.String()` (what Pulumi hands over); None when
    the text is not one of its formats."""
    m = _TIMESTAMP.match(text)
    if m is None:
        return None
    year, month, day = int(m["y"]), int(m["mo"]), int(m["d"])
    rest = text[m.end() :]
    clock = zone = None
    if m["t"] or m["sp"]:
        clock = _CLOCK.match(rest)
        if clock is None:
            return None
        rest = rest[clock.end() :]
        if m["t"]:
            zone = _ZONE.match(rest)
            if zone is None:
                return None
            rest = rest[zone.end() :]
    if rest:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS[month - 1] + (month == 2 and leap):
        return None
    hour = minute = second = nanos = 0
    if clock is not None:
        hour, minute, second = int(clock["h"]), int(clock["mi"]), int(clock["s"])
        if hour >= 24 or minute >= 60 or second >= 60:
            return None
        nanos = int((clock["frac"] or "0")[:9].ljust(9, "0"))
    offset, name = 0, "UTC"
    if zone is not None and zone[0] != "Z":
        hours, minutes = int(zone["zh"]), int(zone["zm"])
        if hours > 24 or minutes > 60:
            return None
        offset = (hours * 60 + minutes) * 60 * (-1 if zone["sign"] == "-" else 1)
        name = _local_zone_name(year, month, day, hour, minute, second, offset)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    sign, shown = ("-", -offset) if offset < 0 else ("+", offset)
    numeric = f"{sign}{shown // 3600:02d}{shown % 3600 // 60:02d}"
    return (
        f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}{fraction} {numeric} {name or numeric}"
    )


def _local_zone_name(year: int, month: int, day: int, hour: int, minute: int, second: int, offset: int) -> str:
    """time.Parse keeps an explicit offset in the local zone when the local zone had that offset at that instant
    (then `String()` shows the zone's name, e.g. UTC); otherwise in a zone without a name (`-0500 -0500`)."""
    if year < 1:
        return ""
    instant = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    try:
        local = time.localtime(instant)
    except (OverflowError, OSError, ValueError):
        return ""
    return local.tm_zone if local.tm_gmtoff == offset else ""


def resolve_tagged(tag: str, text: str) -> Any:
    """go-yaml's `resolve(tag, in)` for a scalar with an explicit standard tag (`!!int "12"`); ValueError with
    go-yaml's words when the text is not of that kind ("cannot decode !!str `yes` as a !!bool")."""
    short = "!!" + tag.removeprefix(_STD)
    if short == "!!str":
        return text
    if short == "!!binary":
        try:
            return base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True).decode(errors="replace")
        except (binascii.Error, ValueError):
            raise ValueError("!!binary value contains invalid base64 data") from None
    if short == "!!timestamp":
        stamp = go_time(text)
        if stamp is not None:
            return stamp
    value = _resolve(text, timestamps=False)
    kind = _go_kind(value)
    if kind == short:
        return value
    if short == "!!float" and kind == "!!int":
        return float(value)
    raise ValueError(f"cannot decode {kind} `{text}` as a {short}")


def _go_kind(value: Any) -> str:
    if value is None:
        return "!!null"
    if isinstance(value, bool):
        return "!!bool"
    if isinstance(value, int):
        return "!!int"
    if isinstance(value, float):
        return "!!float"
    return "!!str"


def go_key(key: Any) -> str:
    """A mapping key as Pulumi makes it text (`fmt.Sprintf("%v", k)`): `3`, `true`, `<nil>`."""
    if isinstance(key, str):
        return key
    if key is None:
        return "<nil>"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return _go_float(key, general=True)
    return str(key)


def _go_float(number: float, general: bool = False) -> str:
    """Go's text of a float64, shortest digits: encoding/json's (fixed notation from 1e-6 up to 1e21, else an
    exponent, `1e+21`, `1.5e-7`), or with `general` fmt's `%v` (`%g`: an exponent below 1e-4 and from 1e6,
    `1e+06`)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "-0" if math.copysign(1, number) < 0 else "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(map(str, digits))
    point = len(shown) + exponent  # where the decimal point goes in `shown`
    power = point - 1
    scientific = (power < -4 or power >= 6) if general else (abs(number) < 1e-6 or abs(number) >= 1e21)
    if scientific:
        mantissa = shown[0] + ("." + shown[1:] if len(shown) > 1 else "")
        # strconv writes at least two exponent digits; encoding/json then shortens e-07 to e-7.
        digits_shown = f"{abs(power):02d}" if general else str(abs(power))
        text = f"{mantissa}e{'-' if power < 0 else '+'}{digits_shown}"
    elif point <= 0:
        text = "0." + "0" * -point + shown
    elif point >= len(shown):
        text = shown + "0" * (point - len(shown))
    else:
        text = shown[:point] + "." + shown[point:]
    return ("-" if sign else "") + text


def engine_json(value: Any) -> str:
    """Go's encoding/json of a config value (what Pulumi hands the program for a list or mapping)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"json: unsupported value: {_go_float(value)}")
        return _go_float(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, Mapping):
        items = sorted((go_key(k), v) for k, v in value.items())
        return "{" + ",".join(f"{_go_string(k)}:{engine_json(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(engine_json(v) for v in value) + "]"
    return _go_string(str(value))


def _go_string(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        out = out.replace(raw, escaped)
    return out


def engine_value(value: Any) -> str:
    """How Pulumi hands one `config:` value to the program: text as written, booleans and numbers as Go's JSON
    text of them, lists and mappings as Go's JSON, nothing after the colon as ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return engine_json(value)


def is_secure(value: Any) -> bool:
    """A `{secure: <ciphertext>}` leaf as Pulumi recognises it: one key, `secure`, holding text."""
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("secure"), str)


class _GoYamlValues(yaml.constructor.SafeConstructor):
    """go-yaml v3's values: plain scalars by `resolve_plain`, explicit standard tags by `resolve_tagged`, any
    other tag ignored (go-yaml decodes the node by its kind), keys made text as Pulumi does, and a key written
    twice in one mapping refused (go-yaml compares the keys' text; PyYAML would keep the last value). Untagged
    plain scalars are all left to `resolve_plain`: PyYAML's YAML 1.1 resolvers are not used."""

    def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode:
            if implicit[0]:
                return _MERGE if value == "<<" else _PLAIN  # `<<` stays the merge key, as in go-yaml
            return _STD + "str"
        return _STD + ("seq" if kind is yaml.SequenceNode else "map")

    def construct_go_plain(self, node: yaml.Node) -> Any:
        return _marked(resolve_plain(str(node.value)), node)

    def construct_go_tagged(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return self.construct_by_kind(node)
        try:
            return _marked(resolve_tagged(str(node.tag), node.value), node)
        except ValueError as exc:
            raise ConstructorError(None, None, str(exc), node.start_mark) from None

    def construct_by_kind(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self.construct_go_mapping(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.construct_object(child, deep=True) for child in node.value]
        return node.value

    def construct_go_mapping(self, node: yaml.Node) -> dict[str, Any]:
        assert isinstance(node, yaml.MappingNode)
        own = {id(key_node) for key_node, _ in node.value if key_node.tag != _MERGE}
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and id(key_node) in own:
                if key_node.value in seen:
                    self._twice(key_node.value, key_node, seen[key_node.value])
                seen[key_node.value] = key_node
        self.flatten_mapping(node)  # `<<` merges first: the mapping's own keys override what they bring
        result: dict[str, Any] = {}
        where: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict) or not isinstance(key, Hashable):
                raise ConstructorError(
                    "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
                )
            text = go_key(key)
            first = where.get(text)
            if first is not None and id(first) in own and id(key_node) in own:
                # Two spellings of one key (`1` and `1.0`): the CLI refuses them as a key defined twice.
                self._twice(text, key_node, first)
            where[text] = key_node
            result[text] = self.construct_object(value_node, deep=True)
        return result

    def _twice(self, key: str, node: yaml.Node, first: yaml.Node) -> None:
        raise ConstructorError(
            None, None, f"key {key!r} is defined twice (first at line {first.start_mark.line + 1})", node.start_mark
        )


def _marked(value: Any, node: yaml.Node) -> Any:
    """A non-finite number keeps where it was written, for the message that refuses it."""
    if isinstance(value, float) and not math.isfinite(value):
        marked = NonFinite(value)
        marked.mark, marked.text = node.start_mark, str(node.value)
        return marked
    return value


class Loader(_GoYamlValues, yaml.SafeLoader):
    """PyYAML's own parser (the one whose messages say what, line and column) with go-yaml v3's values."""


class FastLoader(_GoYamlValues, getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's parser, when PyYAML has it (ten times faster), with go-yaml v3's values."""


def _register(loader: type[yaml.SafeLoader]) -> None:
    constructors: dict[str | None, Callable[[Any, yaml.Node], Any]] = {
        _PLAIN: _GoYamlValues.construct_go_plain,
        _STD + "map": _GoYamlValues.construct_go_mapping,
        **dict.fromkeys(
            (_STD + t for t in ("str", "int", "float", "bool", "null", "binary", "timestamp")),
            _GoYamlValues.construct_go_tagged,
        ),
        **dict.fromkeys((_STD + t for t in ("set", "omap", "pairs")), _GoYamlValues.construct_by_kind),
        None: _GoYamlValues.construct_by_kind,  # any other tag: by the node's kind, as go-yaml decodes it
    }
    for tag, constructor in constructors.items():
        loader.add_constructor(tag, constructor)


_register(Loader)
_register(FastLoader)


def load(text: str, fast: bool = True) -> Any:
    """The document as the CLI reads it. Raises a yaml.MarkedYAMLError (with line and column) for what go-yaml or
    Pulumi refuses: malformed YAML, a key written twice, a value not of its explicit tag, a number that is not
    finite."""
    doc = yaml.load(text, Loader=FastLoader if fast else Loader)  # nosec B506 - a SafeConstructor
    for path, number in _non_finite(doc, ""):
        shown = path.removeprefix("config.")
        raise ConstructorError(
            None,
            None,
            f"{shown}: {number.text} is not a finite number; the Pulumi CLI refuses the whole stack file for it "
            f'("json: unsupported value: {_go_float(number)}"): write a finite number',
            number.mark,
        )
    return doc


def _non_finite(value: Any, path: str) -> Iterator[tuple[str, NonFinite]]:
    if isinstance(value, NonFinite):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _non_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _non_finite(v, f"{path}[{i}]")
