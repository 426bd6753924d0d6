"""The `jinstruct` command. Each subcommand lives in its own module and is imported only when used."""

from __future__ import annotations

import importlib
import sys

# name -> (module with a `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": (
        "jinstruct.evaluate",
        "an alias of lm_eval (every flag passes through); plain lm_eval sees our tasks too",
    ),
    "tasks-dir": ("jinstruct.evaluate", "print the installed task folder, for lm_eval --include_path"),
    "train": ("jinstruct.training.train", "LoRA instruction tuning (Accelerate + DeepSpeed)"),
    "leaderboard": ("jinstruct.leaderboard", "score a list of models and write the leaderboard"),
    "generate": ("jinstruct.generate", "greedy generations of base and tuned models side by side"),
    "demo": ("jinstruct.demo", "the offline end-to-end demo on a tiny model (smoke scale)"),
}


def _usage() -> str:
    lines = ["usage: jinstruct COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`jinstruct COMMAND --help` describes each command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"jinstruct: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    entry = getattr(module, "main_" + name.replace("-", "_"), None) or module.main
    return int(entry(rest) or 0)
