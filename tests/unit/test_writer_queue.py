"""The writers' turns (storage.uow.WriterQueue) with room for several at once, as on
PostgreSQL (one per pooled connection): the ranks hold whenever a writer has to wait."""

from __future__ import annotations

import asyncio

import pytest

from storage.uow import WriterQueue


async def test_writers_beyond_the_room_wait_and_the_freed_turns_go_by_rank() -> None:
    queue = WriterQueue(capacity=2)
    order: list[str] = []
    free = {name: asyncio.Event() for name in ("a", "b", "claim", "intake", "card")}

    async def write(name: str, **rank: bool) -> None:
        await queue.acquire(**rank)
        task = asyncio.current_task()
        order.append(name)
        await free[name].wait()
        queue.release(task)

    async with asyncio.timeout(5):
        first = [asyncio.create_task(write(name)) for name in ("a", "b")]
        await asyncio.sleep(0)
        assert order == ["a", "b"]  # room for two: neither waited
        waiting = [
            asyncio.create_task(write("claim", background=True)),
            asyncio.create_task(write("intake")),
            asyncio.create_task(write("card", urgent=True)),
        ]
        await asyncio.sleep(0.01)
        assert order == ["a", "b"]
        free["a"].set()
        await asyncio.sleep(0.01)
        assert order[2:] == ["card"]  # the urgent writer, though it came last
        free["b"].set()
        await asyncio.sleep(0.01)
        assert order[3:] == ["intake"]  # the background one only when no other waits
        free["card"].set()
        await asyncio.sleep(0.01)
        assert order[4:] == ["claim"]
        free["intake"].set()
        free["claim"].set()
        await asyncio.gather(*first, *waiting)
        await asyncio.wait_for(queue.acquire(), 0.1)  # every turn came back: no wait
        await asyncio.wait_for(queue.acquire(), 0.1)


async def test_a_writer_cancelled_while_it_waits_leaves_no_turn_taken() -> None:
    queue = WriterQueue(capacity=1)
    await queue.acquire()
    holder = asyncio.current_task()
    gone = asyncio.create_task(queue.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    queue.release(holder)
    await asyncio.wait_for(queue.acquire(), 0.1)  # the cancelled writer did not keep it


async def test_only_a_single_turn_refuses_a_writer_nested_in_its_own_task() -> None:
    single = WriterQueue(capacity=1)
    await single.acquire()
    with pytest.raises(RuntimeError, match="inside another"):
        await single.acquire()
    several = WriterQueue(capacity=2)
    await several.acquire()
    await asyncio.wait_for(several.acquire(), 0.1)  # a second connection: nothing to wait for
