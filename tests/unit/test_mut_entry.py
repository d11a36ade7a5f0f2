"""MemoryEntry behaviours that surviving mutants showed untested (docs/testing.md, "Mutation score")."""

from __future__ import annotations

import pytest

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError


@pytest.mark.parametrize("field", ["version", "access_count"])
def test_a_negative_count_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"^{field} must be an int >= 0, got -1$"):
        MemoryEntry("k", 1, **{field: -1})  # type: ignore[arg-type]


def test_copy_of_a_value_that_is_not_json_yet_is_a_deep_copy() -> None:
    # a set inside a list: not JSON, so the write will refuse it, but copying must neither fail nor share it
    original = MemoryEntry("k", [{1, 2}], metadata={"m": 1})
    copied = original.copy()
    assert copied.value == [{1, 2}]
    copied.value[0].add(3)
    assert original.value == [{1, 2}]


def test_from_dict_keeps_an_expiry_set_apart_from_the_ttl() -> None:
    # expires_at is its own field: an entry may expire at a time that is not created_at + ttl
    for entry in (
        MemoryEntry("no-ttl", 1, created_at=100.0, expires_at=500.0),
        MemoryEntry("moved", 1, ttl=10, created_at=100.0, expires_at=250.0),
    ):
        back = MemoryEntry.from_dict(entry.to_dict())
        assert back.expires_at == entry.expires_at
        assert back == entry
