"""jinstruct as an lm-eval plugin: our task folder in every `TaskManager`, `hf-fast` in the model registry.

`jinstruct.lm_eval_hook` calls these when lm_eval imports the modules they extend. Both step aside
when the installed lm-eval loads plugins itself (the `lm_eval.models` / `lm_eval.tasks` entry points
that pyproject.toml declares), so nothing is registered twice.

Task folders: ours comes first and the user's `include_path` after it, so a user's task of the same
name wins. A folder is never scanned twice (lm-eval warns about every task it indexes again): when
the user passes our folder or a folder above it, ours is not added; when the user passes a folder
inside ours, that folder is left out, since ours already holds its tasks.
"""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from jinstruct.harness_tasks import tasks_dir

# The placeholder must equal f"{cls.__module__}:{cls.__name__}": lm-eval then swaps in the class when
# `@register_model("hf-fast")` runs, instead of calling it a clash.
MODELS = {"hf-fast": "jinstruct.scoring.hf_fast:HFFastLM"}

# lm-eval's modules that would read plugin entry points if it supported them.
_PLUGIN_READERS = ("__init__.py", "api/registry.py", "models/__init__.py", "tasks/*.py")


@functools.cache
def lm_eval_loads_plugins(group: str) -> bool:
    """Whether the installed lm-eval reads entry points of `group` itself (its code names the group)."""
    root = Path(sys.modules["lm_eval"].__file__).parent
    quoted = (f'"{group}"', f"'{group}'")
    for pattern in _PLUGIN_READERS:
        for path in root.glob(pattern):
            text = path.read_text(encoding="utf-8", errors="replace")
            if "entry_points" in text and any(q in text for q in quoted):
                return True
    return False


def _as_list(paths: Any) -> list:
    if paths is None:
        return []
    return list(paths) if isinstance(paths, (list, tuple)) else [paths]


def include_paths(user: Any, ours: Path | None = None) -> list:
    """Our task folder, then the user's folders, with no folder scanned twice (see the module doc)."""
    ours = (ours or tasks_dir()).resolve()
    add_ours = True
    kept = []
    for path in _as_list(user):
        resolved = Path(path).expanduser().resolve()
        if resolved == ours or resolved in ours.parents:
            add_ours = False
        if ours in resolved.parents:
            continue
        kept.append(path)
    return ([ours] if add_ours else []) + kept


def extend_task_manager(module: ModuleType) -> None:
    """Make every `TaskManager(...)` index our tasks (unless `include_defaults=False`: then only what is asked)."""
    if lm_eval_loads_plugins("lm_eval.tasks"):
        return
    cls = module.TaskManager
    init = cls.__init__
    if getattr(init, "jinstruct_tasks", False):
        return
    sig = inspect.signature(init)
    if "include_path" not in sig.parameters:
        raise TypeError("this lm-eval's TaskManager takes no include_path")
    defaults_param = sig.parameters.get("include_defaults")
    defaults_default = True if defaults_param is None else defaults_param.default

    @functools.wraps(init)
    def __init__(*args: Any, **kwargs: Any) -> None:
        bound = sig.bind(*args, **kwargs)
        if bound.arguments.get("include_defaults", defaults_default):
            bound.arguments["include_path"] = include_paths(bound.arguments.get("include_path"))
        init(*bound.args, **bound.kwargs)

    __init__.jinstruct_tasks = True  # type: ignore[attr-defined]
    cls.__init__ = __init__


def register_models(module: ModuleType | None = None) -> None:
    """Add `hf-fast` to lm-eval's model registry as a lazy placeholder, after its built-in models
    (lm_eval imports its built-ins only while the registry is empty)."""
    if lm_eval_loads_plugins("lm_eval.models"):
        return
    from lm_eval.api.registry import model_registry

    for name, target in MODELS.items():
        if name not in model_registry:
            model_registry.register(name, target=target)
