"""Long-running tasks of the Confluence simulator: the asynchronous user delete (§2.5)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scimsync.sim.confluence_directory import ConfluenceDirectory, ConfluenceUser

# [U] the name key of the delete task; the reference gives only the shape (§2.5).
DELETE_TASK_KEY = "com.atlassian.confluence.user.actions.delete.user.task.name"
NEVER = -1


@dataclass
class LongTask:
    """One submitted task: the user it deletes and how far it got."""

    id: str
    user_key: str
    username: str
    started: float
    polls: int = 0
    finished: bool = False
    successful: bool = False
    ended: float | None = None
    messages: list[str] = field(default_factory=list)


class TaskBoard:
    """Submit user deletions and advance them one step per status poll.

    ``steps`` polls finish a task (0: finished on submission, -1: never); with ``fails``
    it finishes unsuccessfully and the user stays.
    """

    def __init__(self, steps: int, fails: bool, clock: Callable[[], float]) -> None:
        if steps < NEVER:
            raise ValueError("delete_task_steps must be -1 (never finishes) or at least 0")
        self.steps = steps
        self.fails = fails
        self.clock = clock
        self.tasks: dict[str, LongTask] = {}

    def submit(self, directory: ConfluenceDirectory, user: ConfluenceUser) -> LongTask:
        """Start deleting ``user``; the user is gone only when the task finishes."""
        task_id = str(uuid.UUID(int=(0x5C0FF1CE << 96) | (len(self.tasks) + 1)))
        task = LongTask(task_id, user.key, user.name, self.clock())
        self.tasks[task_id] = task
        if self.steps == 0:
            self._finish(directory, task)
        return task

    def poll(self, directory: ConfluenceDirectory, task: LongTask) -> None:
        """Advance a task by one poll."""
        if task.finished:
            return
        task.polls += 1
        if self.steps != NEVER and task.polls >= self.steps:
            self._finish(directory, task)

    def _finish(self, directory: ConfluenceDirectory, task: LongTask) -> None:
        task.finished = True
        task.ended = self.clock()
        if self.fails:
            task.messages.append(f"Could not delete user '{task.username}': the deletion failed.")
            return
        user = directory.users.get(task.user_key)
        if user is not None:  # a second delete task of the same user finds it gone: still a success
            directory.delete_user(user)
        task.successful = True
        task.messages.append(f"User '{task.username}' was deleted.")

    def percentage(self, task: LongTask) -> int:
        """Return how far a task is, 100 once finished."""
        if task.finished:
            return 100
        if self.steps == NEVER:
            return 0
        return task.polls * 100 // self.steps

    def status(self, task: LongTask) -> dict[str, Any]:
        """Return the long-task status JSON (§2.5)."""
        end = task.ended if task.ended is not None else self.clock()
        return {
            "id": task.id,
            "name": {"key": DELETE_TASK_KEY, "args": []},
            "elapsedTime": int((end - task.started) * 1000),
            "percentageComplete": self.percentage(task),
            "successful": task.successful,
            "finished": task.finished,
            "messages": [{"translation": text} for text in task.messages],
        }
