"""What the task YAMLs name with `!function utils.X`; the logic lives in importable modules."""

from jinstruct.harness_tasks.jglue.task import JGLUETask

__all__ = ["JGLUETask"]
