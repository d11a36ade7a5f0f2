from __future__ import annotations

import pytest

from agentmem_plugin import errors
from agentmem_plugin.errors import (
    AccessDeniedError,
    AgentMemError,
    BackendUnavailableError,
    EmbeddingError,
    IndexInUseError,
    IntegrityError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyNotFoundError,
    MissingDependencyError,
    ReadOnlyStoreError,
    SchemaVersionError,
    SerializationError,
    StorageError,
    StoreCorruptError,
)

BUILTIN_OF = {
    InvalidKeyError: ValueError,
    InvalidArgumentError: ValueError,
    KeyNotFoundError: KeyError,
    SerializationError: TypeError,
    IntegrityError: ValueError,
    EmbeddingError: ValueError,
    MissingDependencyError: ImportError,
    AccessDeniedError: PermissionError,
    StorageError: OSError,
    StoreCorruptError: OSError,
    SchemaVersionError: OSError,
    ReadOnlyStoreError: OSError,
    IndexInUseError: OSError,
    BackendUnavailableError: ConnectionError,
}


def test_every_public_error_is_covered() -> None:
    public = {getattr(errors, name) for name in errors.__all__} - {AgentMemError}
    assert public == set(BUILTIN_OF)


def test_root_is_an_exception() -> None:
    assert issubclass(AgentMemError, Exception)


@pytest.mark.parametrize(("cls", "builtin"), list(BUILTIN_OF.items()), ids=lambda x: x.__name__)
def test_error_derives_from_root_and_builtin(
    cls: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(cls, AgentMemError)
    assert issubclass(cls, builtin)
    err = cls("boom")
    with pytest.raises(builtin):
        raise err
    with pytest.raises(AgentMemError):
        raise err


@pytest.mark.parametrize("cls", [StoreCorruptError, SchemaVersionError, ReadOnlyStoreError, BackendUnavailableError])
def test_storage_subclasses(cls: type[Exception]) -> None:
    assert issubclass(cls, StorageError)
    with pytest.raises(StorageError):
        raise cls("x")


def test_key_not_found_str_is_readable_message() -> None:
    err = KeyNotFoundError("no live memory under key 'k'")
    assert str(err) == "no live memory under key 'k'"
    # KeyError would have repr()-quoted it
    assert str(KeyError("no live memory under key 'k'")) != str(err)
    assert str(KeyNotFoundError()) == ""


def test_key_not_found_caught_as_keyerror() -> None:
    with pytest.raises(KeyError, match="missing thing"):
        raise KeyNotFoundError("missing thing")
