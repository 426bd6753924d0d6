"""`jinstruct eval`: lm_eval's own CLI with the jinstruct tasks and backends already included.

Every argument passes through to `lm_eval`; this only adds `--include_path` (the installed task
folder) and registers the `hf-fast` backend before lm_eval parses the model name.
"""

from __future__ import annotations

import importlib
import sys

from jinstruct.harness_tasks import tasks_dir


def _register_backends() -> None:
    try:
        importlib.import_module("jinstruct.scoring")
    except ImportError as e:  # the stock `hf` model still works without it
        print(f"jinstruct: the hf-fast backend is unavailable ({e})", file=sys.stderr)


def _merge_include_path(argv: list[str]) -> list[str]:
    """Add our task folder; keep the user's own --include_path working beside it."""
    ours = str(tasks_dir())
    user_paths = []
    rest = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--include_path" and i + 1 < len(argv):
            user_paths.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--include_path="):
            user_paths.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    if user_paths:
        # lm_eval's CLI takes one folder; its TaskManager takes several.
        import lm_eval.tasks.manager as manager

        original = manager.TaskManager.__init__

        def __init__(self, *args, include_path=None, **kwargs):
            original(self, *args, include_path=[ours, *user_paths], **kwargs)

        manager.TaskManager.__init__ = __init__
    return [*rest, "--include_path", ours]


def main_eval(argv: list[str]) -> int:
    from lm_eval.__main__ import cli_evaluate

    _register_backends()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: jinstruct eval [lm_eval arguments...]\n\n"
              "Runs lm_eval with the jinstruct tasks included, e.g.\n"
              "  jinstruct eval --model hf --model_args pretrained=cyberagent/open-calm-7b "
              "--tasks jnli_v02,marcja_v02 --num_fewshot 3\n"
              "`lm_eval --help` lists every argument.")
        return 0
    from jinstruct.harness_tasks.jglue.fewshot import FewShotPoolError
    from jinstruct.names import task_hint

    sys.argv = ["lm-eval", *_merge_include_path(list(argv))]
    try:
        cli_evaluate()
    except ValueError as err:  # lm-eval's "Tasks not found: a, b": add the closest of our task names
        hint = task_hint(str(err).split(":", 1)[1].split(", ")) if str(err).startswith("Tasks not found:") else ""
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
