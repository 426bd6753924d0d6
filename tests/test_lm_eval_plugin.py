"""The start-up hook and the lm-eval glue: plain lm_eval sees our tasks and hf-fast, and nothing else changes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import sysconfig
import types
from pathlib import Path

import pytest
from lm_eval.tasks._index import TaskIndex

from jinstruct import lm_eval_hook, lm_eval_plugin
from jinstruct.harness_tasks import tasks_dir

OURS = tasks_dir().resolve()
PTH = Path(sysconfig.get_paths()["purelib"]) / "jinstruct-lm-eval.pth"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """A fresh interpreter, started the normal way (site-packages' .pth files run), outside the repo."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**ENV, **env}, cwd="/", timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_the_pth_file_is_installed_and_sorts_after_the_editable_finder():
    assert PTH.is_file(), "reinstall the project (pip install -e .): setup.py writes the start-up hook"
    line = PTH.read_text(encoding="ascii")
    assert line.startswith("import ") and line.count("\n") == 1 and "jinstruct.lm_eval_hook" in line
    editable = sorted(p.name for p in PTH.parent.glob("__editable__*jinstruct*.pth"))
    assert all(name < PTH.name for name in editable)


def test_interpreter_start_loads_only_the_tiny_hook():
    out = python(
        "import sys; from jinstruct import lm_eval_hook as h; "
        "print(sorted(m for m in sys.modules if m.startswith(('jinstruct', 'lm_eval', 'torch', 'transformers')))); "
        "print(sum(getattr(f, 'jinstruct_hook', False) for f in sys.meta_path))"
    ).stdout.splitlines()
    assert out == ["['jinstruct', 'jinstruct.lm_eval_hook']", "1"]


def test_opt_out_installs_nothing():
    out = python(
        "import sys; print(any(getattr(f, 'jinstruct_hook', False) for f in sys.meta_path))",
        JINSTRUCT_LM_EVAL_AUTOLOAD="0",
    ).stdout
    assert out.strip() == "False"


def test_the_pth_line_is_idempotent_and_survives_a_missing_package(tmp_path):
    line = PTH.read_text(encoding="ascii")
    code = (
        "import sys\n"
        f"exec({line!r}); exec({line!r})\n"
        "print(sum(getattr(f, 'jinstruct_hook', False) for f in sys.meta_path))\n"
        "sys.modules['jinstruct.lm_eval_hook'] = None  # as if the package were gone\n"
        "[sys.meta_path.remove(f) for f in list(sys.meta_path) if getattr(f, 'jinstruct_hook', False)]\n"
        f"exec({line!r})\n"
        "print(sum(getattr(f, 'jinstruct_hook', False) for f in sys.meta_path))\n"
    )
    proc = python(code)
    assert proc.stdout.split() == ["1", "0"] and proc.stderr == ""


def test_models_resolve_without_importing_jinstruct():
    out = python(
        "from lm_eval.api.registry import get_model, model_registry\n"
        "print(get_model('hf-fast').__module__, get_model('hf').__name__, 'vllm' in model_registry)\n"
    ).stdout.split()
    assert out == ["jinstruct.scoring.hf_fast", "HFLM", "True"]  # built-ins intact, ours beside them


def test_models_can_be_hidden():
    code = (
        "from lm_eval.api.registry import get_model\n"
        "try:\n    get_model('hf-fast')\nexcept ValueError:\n    print('unknown')\n"
    )
    assert python(code, JINSTRUCT_LM_EVAL_AUTOLOAD="0").stdout.strip() == "unknown"


def test_include_paths_put_ours_first_and_never_scan_a_folder_twice(tmp_path):
    assert lm_eval_plugin.include_paths(None) == [OURS]
    assert lm_eval_plugin.include_paths(str(tmp_path)) == [OURS, str(tmp_path)]
    assert lm_eval_plugin.include_paths([tmp_path, "b"]) == [OURS, tmp_path, "b"]
    assert lm_eval_plugin.include_paths(str(OURS)) == [str(OURS)]  # the user's folder is ours
    assert lm_eval_plugin.include_paths([str(OURS.parent), tmp_path]) == [str(OURS.parent), tmp_path]
    assert lm_eval_plugin.include_paths([tmp_path, str(OURS / "jglue")]) == [OURS, tmp_path]


# (A folder above ours is covered by the include_paths test: ours is then not added; indexing the folder
# above, here the whole source tree with its .venv, would only cost time.)
@pytest.mark.parametrize("user", [OURS, OURS / "jglue", OURS / "vqa"])
def test_no_duplicate_task_warnings_when_the_user_passes_our_folder(user, tmp_path, caplog):
    (tmp_path / "jnli_v03.yaml").write_text(
        "task: jnli_v03\ndataset_path: mine\noutput_type: loglikelihood\n"
    )
    with caplog.at_level(logging.DEBUG, logger="lm_eval.tasks._index"):
        index = TaskIndex.build([Path(p) for p in lm_eval_plugin.include_paths([str(user), str(tmp_path)])])
    noisy = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    mine, theirs = tmp_path / "jnli_v03.yaml", OURS / "jglue" / "jnli_v03.yaml"
    assert noisy == [
        f"Task 'jnli_v03' from {mine} overrides existing task from {theirs}"
    ]  # the user's own override only
    assert index["jnli_v03"].yaml_path == tmp_path / "jnli_v03.yaml"  # the user's task wins
    assert {"marcja_v02", "vqa_ppl", "ja_paper"} <= set(index)


class _FakeTaskManager:
    def __init__(self, verbosity=None, include_path=None, include_defaults=True, metadata=None):
        self.include_path = include_path


def _fake_module() -> types.ModuleType:
    module = types.ModuleType("fake_manager")
    module.TaskManager = type("TaskManager", (_FakeTaskManager,), {"__init__": _FakeTaskManager.__init__})
    return module


def test_task_manager_gets_our_folder_however_it_is_called(tmp_path):
    module = _fake_module()
    lm_eval_plugin.extend_task_manager(module)
    lm_eval_plugin.extend_task_manager(module)  # idempotent: wrapped once
    tm = module.TaskManager
    assert tm().include_path == [OURS]
    assert tm(None, str(tmp_path)).include_path == [OURS, str(tmp_path)]
    assert tm(include_path=[str(tmp_path)], metadata={}).include_path == [OURS, str(tmp_path)]
    # include_defaults=False asks for exactly the given folders.
    assert tm(include_path=str(tmp_path), include_defaults=False).include_path == str(tmp_path)
    assert not hasattr(tm.__init__.__wrapped__, "__wrapped__")


def test_steps_aside_when_lm_eval_loads_plugins_itself(tmp_path, monkeypatch):
    fake = tmp_path / "lm_eval"
    (fake / "tasks").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "tasks" / "manager.py").write_text(
        "from importlib.metadata import entry_points\nPLUGINS = entry_points(group='lm_eval.tasks')\n"
    )
    monkeypatch.setitem(sys.modules, "lm_eval", types.SimpleNamespace(__file__=str(fake / "__init__.py")))
    lm_eval_plugin.lm_eval_loads_plugins.cache_clear()
    try:
        assert lm_eval_plugin.lm_eval_loads_plugins("lm_eval.tasks")
        assert not lm_eval_plugin.lm_eval_loads_plugins("lm_eval.models")
        module = _fake_module()
        lm_eval_plugin.extend_task_manager(module)
        assert module.TaskManager(include_path="x").include_path == "x"  # untouched
    finally:
        monkeypatch.undo()
        lm_eval_plugin.lm_eval_loads_plugins.cache_clear()
    assert not lm_eval_plugin.lm_eval_loads_plugins("lm_eval.tasks")  # the real lm-eval 0.4.13 does not


def test_a_failing_extension_warns_and_never_breaks_the_import(capsys):
    broken = types.ModuleType("lm_eval.tasks.manager")  # no TaskManager in it
    lm_eval_hook._after_import(broken)
    err = capsys.readouterr().err
    assert (
        "jinstruct: could not extend lm_eval.tasks.manager" in err and "JINSTRUCT_LM_EVAL_AUTOLOAD=0" in err
    )


def test_user_tasks_win_in_a_real_task_manager(tmp_path):
    """Stock TaskManager, built-ins included, in a fresh interpreter: ours, the user's, no duplicate warnings."""
    (tmp_path / "mine.yaml").write_text("task: my_task\ndataset_path: nowhere\noutput_type: loglikelihood\n")
    (tmp_path / "jnli_v03.yaml").write_text(
        "task: jnli_v03\ndataset_path: mine\noutput_type: loglikelihood\n"
    )
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "from lm_eval.tasks import TaskManager\n"
        f"tm = TaskManager(include_path=[{str(OURS / 'jglue')!r}, {str(tmp_path)!r}])\n"
        "print('TASKS', tm.task_index['jnli_v03'].yaml_path, 'vqa_ppl' in tm.all_tasks, 'my_task' in tm.all_tasks,"
        " 'hellaswag' in tm.all_tasks)\n"
    )
    lines = python(code).stdout.splitlines()
    assert lines[-1] == f"TASKS {tmp_path / 'jnli_v03.yaml'} True True True"
    ours_or_users = [
        line for line in lines if line.startswith("WARNING") and (str(OURS) in line or str(tmp_path) in line)
    ]
    assert ours_or_users == [
        f"WARNING Task 'jnli_v03' from {tmp_path / 'jnli_v03.yaml'} overrides existing task from {OURS / 'jglue' / 'jnli_v03.yaml'}"
    ]  # the user's deliberate override, and nothing scanned twice


def test_without_lm_eval_the_hook_does_nothing():
    code = (
        "import sys\n"
        "sys.path[:] = [p for p in sys.path if 'site-packages' not in p]  # as if lm_eval were not installed\n"
        "for name in [m for m in sys.modules if m.startswith('lm_eval')]: del sys.modules[name]\n"
        "try:\n    import lm_eval.tasks.manager\nexcept ModuleNotFoundError as err:\n    print(err)\n"
    )
    proc = python(code)
    assert proc.stdout.strip() == "No module named 'lm_eval'" and proc.stderr == ""
