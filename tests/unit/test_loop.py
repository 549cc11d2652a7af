"""The event loop of ``siaga112 run``: uvloop's when wanted and installed, else asyncio's."""

from __future__ import annotations

import asyncio
import gc
import importlib
import weakref
from types import ModuleType

import pytest
import uvloop

from bot import loop as loops
from bot.config import load_settings


def test_uvloop_is_used_when_wanted_and_installed() -> None:
    loop, name = loops.new_event_loop(True)
    try:
        assert name == "uvloop"
        assert isinstance(loop, uvloop.Loop)
        assert loop.run_until_complete(asyncio.sleep(0, result=42)) == 42
    finally:
        loop.close()


def test_asyncio_loop_is_used_when_switched_off() -> None:
    loop, name = loops.new_event_loop(False)
    try:
        assert name == "asyncio"
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_asyncio_loop_is_used_when_uvloop_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_uvloop(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(loops.importlib, "import_module", without_uvloop)
    loop, name = loops.new_event_loop(True)
    loop.close()
    assert name == "asyncio"


def test_installed_loop_is_the_threads_current_one_when_run_starts() -> None:
    try:
        assert loops.install_event_loop(True) == "uvloop"
        current = asyncio.get_event_loop_policy().get_event_loop()
        assert isinstance(current, uvloop.Loop)
        current.close()
    finally:
        asyncio.set_event_loop(None)


@pytest.mark.parametrize(("raw", "expected"), [(None, True), ("off", False), ("on", True)])
def test_uvloop_setting_defaults_to_on_when_unset(raw: str | None, expected: bool) -> None:
    env = {"UVLOOP": raw} if raw is not None else {}
    assert load_settings(env, env_file=None).uvloop is expected


def test_the_start_heap_is_frozen_after_its_garbage_is_collected() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node = self

    alive = Node()
    garbage = Node()  # a cycle: only the cyclic collector frees it
    gone = weakref.ref(garbage)
    del garbage
    thresholds = gc.get_threshold()
    gc.disable()  # no automatic collection in between: the call must free the cycle itself
    try:
        frozen = loops.freeze_startup_heap()
        assert gone() is None
        assert frozen == gc.get_freeze_count() > 0
        assert not any(obj is alive for obj in gc.get_objects())  # out of every collection
        # The young generation is collected less often; the older ones as before.
        assert gc.get_threshold() == (loops.YOUNG_GENERATION, *thresholds[1:])
        assert thresholds[0] < loops.YOUNG_GENERATION
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()
    assert any(obj is alive for obj in gc.get_objects())
