"""Entity instance ids: form, parsing, equality, ordering, errors."""

from __future__ import annotations

import pickle

import pytest

from dtask_async import InvalidInstanceIdError
from dtask_async._serialization import decode, encode
from dtask_async.entities import EntityInstanceId


def test_string_form_lower_cases_the_name_only() -> None:
    entity_id = EntityInstanceId("Counter", "My-Key")
    assert str(entity_id) == "@counter@My-Key"
    assert (entity_id.name, entity_id.entity, entity_id.key) == ("counter", "counter", "My-Key")
    assert repr(entity_id) == "EntityInstanceId(name='counter', key='My-Key')"


def test_parse_round_trips_and_keys_may_contain_at_signs() -> None:
    for text in ["@counter@k", "@account@user@example.com", "@a@ spaced key "]:
        assert str(EntityInstanceId.parse(text)) == text
    assert EntityInstanceId.parse("@COUNTER@k") == EntityInstanceId("counter", "k")
    assert EntityInstanceId.parse("@account@a@b").key == "a@b"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("counter@k", "must look like '@name@key'"),
        ("@counter", "no '@' between name and key"),
        ("@@key", "entity name is empty"),
        ("@counter@", "key of entity 'counter' is empty"),
        ("", "must look like"),
    ],
)
def test_bad_string_forms_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(InvalidInstanceIdError, match=problem):
        EntityInstanceId.parse(text)
    with pytest.raises(ValueError):  # InvalidInstanceIdError is a ValueError
        EntityInstanceId.parse(text)


def test_bad_parts_are_refused() -> None:
    with pytest.raises(InvalidInstanceIdError, match="contains '@'"):
        EntityInstanceId("a@b", "k")
    with pytest.raises(InvalidInstanceIdError, match="empty"):
        EntityInstanceId("", "k")
    with pytest.raises(TypeError, match="key must be a string, got int 5"):
        EntityInstanceId("counter", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="name must be a string"):
        EntityInstanceId(None, "k")  # type: ignore[arg-type]
    with pytest.raises(InvalidInstanceIdError, match="control character"):
        EntityInstanceId("counter", "a\nb")
    with pytest.raises(InvalidInstanceIdError, match="characters long"):
        EntityInstanceId("counter", "k" * 300)
    with pytest.raises(TypeError):
        EntityInstanceId.parse(42)  # type: ignore[arg-type]


def test_equality_hashing_and_ordering() -> None:
    a1 = EntityInstanceId("Account", "a")
    a2 = EntityInstanceId("account", "a")
    b = EntityInstanceId("account", "b")
    counter = EntityInstanceId("counter", "a")
    assert a1 == a2
    assert hash(a1) == hash(a2)
    assert len({a1, a2, b}) == 2
    assert a1 != EntityInstanceId("account", "A")
    assert a1 != "@account@a"
    assert sorted([counter, b, a1]) == [a1, b, counter]
    assert a1 < b <= b < counter
    assert counter > b >= b
    with pytest.raises(TypeError):
        _ = a1 < "@account@b"  # type: ignore[operator]


def test_ids_are_immutable_and_picklable() -> None:
    entity_id = EntityInstanceId("counter", "k")
    with pytest.raises(AttributeError):
        entity_id._key = "other"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(entity_id)) == entity_id


def test_ids_travel_in_payloads_as_their_string_form() -> None:
    entity_id = EntityInstanceId("counter", "k")
    assert encode({"target": entity_id}) == '{"target":"@counter@k"}'
    assert decode('"@counter@k"', EntityInstanceId) == entity_id
