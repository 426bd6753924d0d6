"""`jinstruct eval`: an alias of `lm_eval` (every argument passes through), and `jinstruct tasks-dir`.

Plain `lm_eval` already sees the jinstruct tasks and `hf-fast` through the start-up hook
(`jinstruct.lm_eval_hook`). The alias installs the same hook itself, so it works where the hook is
switched off (`JINSTRUCT_LM_EVAL_AUTOLOAD=0`) or site-packages' .pth files never ran (`python -S`).
"""

from __future__ import annotations

import sys

from jinstruct.harness_tasks import tasks_dir


def main_eval(argv: list[str]) -> int:
    from jinstruct import lm_eval_hook

    lm_eval_hook.install(force=True)  # before lm_eval imports anything it extends
    from lm_eval.__main__ import cli_evaluate

    sys.argv = ["lm_eval", *argv]
    cli_evaluate()
    return 0


def main_tasks_dir(argv: list[str]) -> int:
    """Print the installed task folder as the last line (for `lm_eval --include_path $(...)`)."""
    print(tasks_dir())
    return 0


main = main_eval
