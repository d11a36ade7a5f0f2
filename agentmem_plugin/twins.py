"""Async twins, written once: ``astore = async_twin(store)`` gives a class an ``async`` method that runs ``store``.

The twin runs the sync method in the default thread pool (as langchain-core's ``BaseStore.amget`` does), so an
``await`` never blocks the event loop, and it looks the method up by name on the instance, so a subclass that
overrides ``store`` gets an ``astore`` that runs its override.

Example:
    >>> import asyncio
    >>> class Counter:
    ...     def add(self, n: int) -> int:
    ...         return n + 1
    ...     aadd = async_twin(add)
    >>> asyncio.run(Counter().aadd(1))
    2

"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["async_twin", "in_thread"]

_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")


async def in_thread(fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
    """Run ``fn(*args, **kwargs)`` in the running loop's default thread pool and return its result."""
    import asyncio  # deferred: importing asyncio costs ~30 ms, most users never call the async twins

    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


def async_twin(
    method: Callable[Concatenate[_S, _P], _R],
) -> Callable[Concatenate[_S, _P], Coroutine[Any, Any, _R]]:
    """Return the ``async`` twin of *method* (named ``"a" + method.__name__``); see the module docstring."""
    name = method.__name__

    async def twin(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        bound: Callable[_P, _R] = getattr(self, name)
        return await in_thread(bound, *args, **kwargs)

    twin.__name__ = "a" + name
    twin.__qualname__ = method.__qualname__.rpartition(".")[0] + ".a" + name
    twin.__doc__ = (
        f"Async :meth:`{name}`: runs it in a worker thread, so the event loop never blocks."
    )
    twin.__wrapped__ = method  # type: ignore[attr-defined]  # inspect.signature shows the sync signature
    return twin
