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

    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: jinstruct eval [lm_eval arguments...]\n\n"
            "Runs lm_eval with the jinstruct tasks included, e.g.\n"
            "  jinstruct eval --model hf --model_args pretrained=cyberagent/open-calm-7b "
            "--tasks jnli_v02,marcja_v02 --num_fewshot 3\n"
            "`lm_eval --help` lists every argument."
        )
        return 0
    from jinstruct.harness_tasks.jglue.fewshot import FewShotPoolError
    from jinstruct.names import task_hint

    sys.argv = ["lm_eval", *argv]
    try:
        cli_evaluate()
    except ValueError as err:  # lm-eval's "Tasks not found: a, b": add the closest of our task names
        hint = (
            task_hint(str(err).split(":", 1)[1].split(", "))
            if str(err).startswith("Tasks not found:")
            else ""
        )
        if not hint and not isinstance(err, FewShotPoolError):
            raise
        print(f"jinstruct eval: {err}" + (f"\n{hint}" if hint else ""), file=sys.stderr)
        return 2
    return 0


def main_tasks_dir(argv: list[str]) -> int:
    """Print the installed task folder as the last line (for `lm_eval --include_path $(...)`)."""
    print(tasks_dir())
    return 0


main = main_eval
