"""What the task YAML names with `!function utils.X`; the logic lives in importable modules."""

from jinstruct.harness_tasks.xwinograd.task import XWinogradTask

__all__ = ["XWinogradTask"]
