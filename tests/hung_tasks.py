"""What every asyncio task awaits, for a test that hangs. pytest-timeout shows each thread's stack when it stops a
test, and for an asyncio test that is only the event loop's `select`; a task's own `print_stack` shows only its
outermost coroutine. This walks each task's chain of awaits down to the innermost frame, which names what hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import CoroutineType, FrameType, GeneratorType
from typing import Any


def awaited_frames(awaitable: Any) -> Iterator[FrameType]:
    while awaitable is not None:
        if isinstance(awaitable, CoroutineType):
            frame, awaitable = awaitable.cr_frame, awaitable.cr_await
        elif isinstance(awaitable, GeneratorType):
            frame, awaitable = awaitable.gi_frame, awaitable.gi_yieldfrom
        else:
            return
        if frame is not None:
            yield frame


def report(loop: asyncio.AbstractEventLoop) -> str:
    lines = []
    for task in sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name()):
        lines.append(f"task {task.get_name()}:")
        lines += [f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_qualname}"
                  for frame in awaited_frames(task.get_coro())]
    return "\n".join(lines)
