from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import gc
import json
import types
import uuid
import weakref
from collections import namedtuple
from typing import NamedTuple

import pytest

from dtask_async import PayloadError
from dtask_async._serialization import (
    AUTO_OBJECT_MARKER,
    PayloadObject,
    coerce,
    decode,
    encode,
    input_type_of,
    memo_per_callable,
)


@dataclasses.dataclass
class Order:
    product: str
    quantity: int
    cost: float


@dataclasses.dataclass
class Cart:
    orders: list[Order]
    owner: str | None = None


class Point(NamedTuple):
    x: int
    y: int


class Plain:
    def __init__(self, id: str, items: list[str], total: float) -> None:
        self.id = id
        self.items = items
        self.total = total


class Color(enum.Enum):
    RED = "red"


def test_plain_json_round_trips() -> None:
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": []}}
    assert decode(encode(value)) == value


def test_none_is_no_payload() -> None:
    assert encode(None) is None
    assert decode(None) is None
    assert decode("") is None


def test_dataclass_encodes_as_tagged_object_with_attribute_access() -> None:
    text = encode(Order("widget", 2, 3.5))
    assert text is not None
    assert json.loads(text)[AUTO_OBJECT_MARKER] is True
    decoded = decode(text)
    assert isinstance(decoded, PayloadObject)
    assert decoded.product == "widget"
    assert decoded["quantity"] == 2
    assert decoded.get("missing", 7) == 7


def test_namedtuple_keeps_field_names() -> None:
    approval = namedtuple("Approval", ["approver"])
    assert decode(encode(approval("manager@company.com"))).approver == "manager@company.com"


def test_plain_class_and_simple_namespace() -> None:
    decoded = decode(encode(Plain("o-1", ["a"], 9.99)))
    assert (decoded.id, decoded.items, decoded.total) == ("o-1", ["a"], 9.99)
    assert decode(encode(types.SimpleNamespace(k=1))).k == 1


def test_type_hints_rebuild_values() -> None:
    assert decode(encode(Order("w", 1, 2.0)), Order) == Order("w", 1, 2.0)
    cart = Cart([Order("a", 1, 1.0)], owner="me")
    assert decode(encode(cart), Cart) == cart
    assert decode(encode(Point(1, 2)), Point) == Point(1, 2)
    plain = decode(encode(Plain("o", [], 1.0)), Plain)
    assert isinstance(plain, Plain)
    assert plain.id == "o"
    when = dt.datetime(2025, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    assert decode(encode(when), dt.datetime) == when
    assert decode(encode(dt.timedelta(seconds=90)), dt.timedelta) == dt.timedelta(seconds=90)
    assert decode(encode(Color.RED), Color) is Color.RED
    assert decode(encode([Order("a", 1, 1.0)]), list[Order]) == [Order("a", 1, 1.0)]
    assert decode(encode({"k": Order("a", 1, 1.0)}), dict[str, Order]) == {"k": Order("a", 1, 1.0)}
    assert decode(encode(None), Order | None) is None
    assert decode("3", float) == 3.0
    u = uuid.uuid4()
    assert decode(encode(u), uuid.UUID) == u


def test_wrong_hints_never_lose_data() -> None:
    assert coerce({"unexpected": 1}, Order) == {"unexpected": 1}
    assert coerce("text", int) == "text"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (object(), "object of type builtins.object"),
        ({"conn": object()}, "input['conn']"),
        ([1, {2}, b"x"], "input[2] is bytes"),
        (float("nan"), "JSON cannot represent"),
        ({(1, 2): "tuple key"}, "key of type 'tuple'"),
        (lambda: 1, "function"),
    ],
)
def test_unserializable_values_are_named(value: object, fragment: str) -> None:
    with pytest.raises(PayloadError) as info:
        encode(value, "input")
    assert isinstance(info.value, TypeError)
    assert fragment in str(info.value)


def test_self_reference_is_a_clear_error() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(PayloadError, match="nested"):
        encode(loop, "input")


def test_invalid_json_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        decode("{not json")


def test_input_type_of_reads_the_second_parameter() -> None:
    def activity(ctx: object, order: Order) -> None: ...

    def untyped(ctx, value): ...  # type: ignore[no-untyped-def]

    def no_input(ctx: object) -> None: ...

    assert input_type_of(activity) is Order
    assert input_type_of(untyped) is None
    assert input_type_of(no_input) is None


def test_memo_per_callable_computes_once_per_live_callable() -> None:
    calls: list[object] = []

    @memo_per_callable
    def name_of(fn: object) -> str:
        calls.append(fn)
        return repr(fn)

    def first() -> None: ...

    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self) -> None: ...

    assert name_of(first) == name_of(first) == repr(first)
    assert calls == [first]
    # Values that cannot be weakly referenced (or hashed) are computed every time.
    assert name_of("by-name") == name_of("by-name") == "'by-name'"
    odd = Unhashable()
    assert name_of(odd) == name_of(odd)
    assert calls == [first, "by-name", "by-name", odd, odd]

    # The memo does not keep a callable alive.
    def second() -> None: ...

    name_of(second)
    calls.clear()
    ref = weakref.ref(second)
    del second
    gc.collect()
    assert ref() is None
