"""The start-up hook that makes plain `lm_eval` see the jinstruct tasks and the `hf-fast` model.

lm-eval 0.4 has no plugin mechanism yet: its `TaskManager` reads only its own folder and
`include_path`, and `--model` resolves through its registry. So the package installs one line into
site-packages (`jinstruct-lm-eval.pth`, written by setup.py for wheel and editable installs alike):

    import jinstruct.lm_eval_hook ... install()      (guarded: it can never stop Python starting)

`install()` puts a small finder in front of `sys.meta_path` and returns. It imports nothing but `os`
and `sys` (both loaded already), so a Python that never touches lm_eval pays for one module import
and a set lookup per import. When lm_eval imports one of the modules below, the finder lets the
normal loader run it and then calls `jinstruct.lm_eval_plugin`, which adds our task folder to every
`TaskManager` and registers `hf-fast` beside lm_eval's built-in models.

`JINSTRUCT_LM_EVAL_AUTOLOAD=0` turns the hook off (`jinstruct eval` and `--include_path "$(jinstruct
tasks-dir)"` still work). `install` is a plain `module:callable`, so a PEP 829 `.start` file can name it
directly once Python reads those.
"""

from __future__ import annotations

import os
import sys

ENV_SWITCH = "JINSTRUCT_LM_EVAL_AUTOLOAD"

# module lm_eval imports -> the jinstruct.lm_eval_plugin function to run once it has loaded
WATCHED = {
    "lm_eval.tasks.manager": "extend_task_manager",
    "lm_eval.models": "register_models",
}


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def _after_import(module) -> None:
    try:
        from jinstruct import lm_eval_plugin

        getattr(lm_eval_plugin, WATCHED[module.__name__])(module)
    except Exception as err:  # never break `import lm_eval` because of us
        print(
            f"jinstruct: could not extend {module.__name__} ({type(err).__name__}: {err}); "
            f'use --include_path "$(jinstruct tasks-dir)" or `jinstruct eval`, and set {ENV_SWITCH}=0 '
            "to silence this",
            file=sys.stderr,
        )


class _ThenHook:
    """Wraps the real loader: runs the module exactly as it would, then our hook."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module sees its real loader, as if we were not there.
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _after_import(module)

    def __getattr__(self, name: str):
        if name == "loader":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


class LmEvalFinder:
    """A meta path finder that only ever answers for the modules in WATCHED."""

    jinstruct_hook = True  # how install() recognises an instance, even from a reloaded module

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname not in WATCHED:
            return None
        for finder in sys.meta_path:
            if getattr(finder, "jinstruct_hook", False):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ThenHook(spec.loader)
        return spec


def installed() -> bool:
    return any(getattr(f, "jinstruct_hook", False) for f in sys.meta_path)


def install(force: bool = False) -> None:
    """Install the finder once (idempotent). Modules lm_eval already imported are extended now.

    `force=True` ignores the opt-out switch (for `jinstruct eval`, which asks for our tasks explicitly)."""
    if not (force or enabled()):
        return
    if not installed():
        sys.meta_path.insert(0, LmEvalFinder())
    for name in WATCHED:
        module = sys.modules.get(name)
        if module is not None:
            _after_import(module)
