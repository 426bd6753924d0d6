"""`pip install` (a built wheel, and `pip install -e`) into a fresh venv, then plain `lm_eval` as a user types it.

Each venv is made without system site-packages; to stay fast and offline its site-packages links the
dependencies this venv already holds (everything of jinstruct's own left out), and pip installs only
jinstruct itself (`--no-deps`). Every command runs from a folder outside the repository, on a copy of
the fixture data and a tiny model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from jinstruct.harness_tasks.catalog import task_catalog

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SITE = Path(sysconfig.get_paths()["purelib"])
SITE_REL = Path(sysconfig.get_paths()["purelib"]).relative_to(sys.prefix)
OUR_TASKS = sorted(
    m.group(1)
    for p in (REPO / "harness_tasks").rglob("*.yaml")
    if (m := re.search(r"^(?:task|group): (\w+)$", p.read_text(encoding="utf-8"), re.M))
)
PAPER_ROWS = [
    "Stormy (Instruct CALM) (paper)", "CALM (paper)", "Instruct LLaMA 7B (paper)", "LLaMA 7B (paper)",
    "Instruct LLaMA 13B (paper)", "LLaMA 13B (paper)",
]  # fmt: skip
# Build with this venv's setuptools when it can make wheels itself (70.1+); otherwise pip fetches one.
OFFLINE_BUILD = (
    ["--no-build-isolation", "--no-index"]
    if importlib.util.find_spec("setuptools.command.bdist_wheel")
    else []
)
_NOT_COPIED = {
    ".venv",
    ".git",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "runs",
    ".cache",
}


@dataclass
class Env:
    root: Path  # the venv
    work: Path  # a folder outside the repository: the working directory of every command
    data: dict  # lm-eval --metadata for the fixture copies
    wheel: Path | None = None

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env = {**clean, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "TOKENIZERS_PARALLELISM": "false", **env}  # fmt: skip
        exe = str(self.root / "bin" / args[0])
        proc = subprocess.run(
            [exe, *args[1:]], capture_output=True, text=True, cwd=self.work, env=env, timeout=900
        )
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        return proc


def _copy_source(dest: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n in _NOT_COPIED or n.endswith(".egg-info")}
        return skip | ({"demo"} if Path(folder) == REPO / "results" else set())

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _fresh_venv(root: Path) -> Path:
    """A venv without system site-packages whose site-packages links this venv's dependencies."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    site = root / SITE_REL
    for entry in SITE.iterdir():
        if entry.name.startswith(("jinstruct", "__editable__")) or entry.name == "__pycache__":
            continue
        (site / entry.name).symlink_to(entry)
    # The console script pip writes for lm-eval (lm-eval itself is linked, not installed, here).
    script = root / "bin" / "lm_eval"
    script.write_text(
        f"#!{root / 'bin' / 'python'}\nimport sys\nfrom lm_eval.__main__ import cli_evaluate\nsys.exit(cli_evaluate())\n"
    )
    script.chmod(0o755)
    return root


def _work_and_data(base: Path) -> tuple[Path, dict]:
    work = base / "elsewhere"
    work.mkdir()
    shutil.copytree(FIXTURES / "JGLUE", work / "JGLUE")
    shutil.copy(FIXTURES / "vqa" / "question_answers.json", work / "qa.json")
    return work, {"data_dir": str(work / "JGLUE"), "vqa_path": str(work / "qa.json")}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return _copy_source(tmp_path_factory.mktemp("src") / "jinstruct")


@pytest.fixture(scope="module")
def wheel_env(source, tmp_path_factory) -> Env:
    base = tmp_path_factory.mktemp("wheel_env")
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *OFFLINE_BUILD, "-w", str(wheels), str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = wheels.glob("jinstruct-*.whl")
    root = _fresh_venv(base / "venv")
    subprocess.run([root / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    return Env(root, *_work_and_data(base), wheel=wheel)


@pytest.fixture(scope="module")
def editable_env(source, tmp_path_factory) -> Env:
    base = tmp_path_factory.mktemp("editable_env")
    root = _fresh_venv(base / "venv")
    subprocess.run(
        [root / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", *OFFLINE_BUILD, "-e", str(source)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return Env(root, *_work_and_data(base))


@pytest.fixture(params=["wheel", "editable"])
def env(request) -> Env:
    return request.getfixturevalue(f"{request.param}_env")


def _listed(stdout: str) -> set[str]:
    return set(re.findall(r"^\|\s*([\w.-]+)\s*\|", stdout, re.M))


def _results(out: Path) -> dict:
    (path,) = out.glob("*/results_*.json")
    return json.loads(path.read_text(encoding="utf-8"))["results"]


def test_the_wheel_holds_every_file_of_the_packages(wheel_env, source):
    """Whatever the package reads at run time (task templates, prompts, reference rows, demo data) ships."""
    import zipfile

    from setuptools.config.pyprojecttoml import read_configuration

    package_dir = read_configuration(source / "pyproject.toml")["tool"]["setuptools"]["package-dir"]
    in_wheel = set(zipfile.ZipFile(wheel_env.wheel).namelist())
    wanted = {
        package.replace(".", "/") + "/" + f.relative_to(source / folder).as_posix()
        for package, folder in package_dir.items()
        if package.count(".") <= 1  # subpackages live inside their parent's folder
        for f in (source / folder).rglob("*")
        if f.is_file() and "__pycache__" not in f.parts
    }
    assert wanted - in_wheel == set()
    assert "jinstruct-lm-eval.pth" in in_wheel  # at the wheel's root: site-packages


def test_the_package_comes_from_the_install_not_the_repo(env, source, wheel_env):
    out = env.run("python", "-c", "import jinstruct, jinstruct.reference as r; print(jinstruct.__file__); "
                  "print(r.PAPER_TABLE2.is_file())").stdout.split()  # fmt: skip
    home = env.root if env is wheel_env else source
    assert Path(out[0]).resolve().is_relative_to(home.resolve()) and out[1] == "True"
    assert (env.root / SITE_REL / "jinstruct-lm-eval.pth").is_file()


def test_lm_eval_ls_tasks_lists_ours_and_opt_out_hides_them(env):
    # every family and group, so that a folder the wheel forgot shows up here
    assert {"jnli_v03", "jnli13_v03", "marcja_v02", "jcommonsenseqa_v03", "xwinograd_ja", "jsquad_v03",
            "jaqket2_v03", "xlsum_v03", "mgsm_v03", "vqa_ppl", "ja_paper", "ja_eval_v03"} <= set(OUR_TASKS)  # fmt: skip
    catalog = task_catalog()  # the same YAMLs, read by lm-eval's loader: the regex above found them all
    assert len(OUR_TASKS) == len(catalog.tasks) + len(catalog.groups) and "ja_paper" in OUR_TASKS
    listed = _listed(env.run("lm_eval", "ls", "tasks").stdout)
    assert set(OUR_TASKS) <= listed and "hellaswag" in listed
    hidden = _listed(env.run("lm_eval", "ls", "tasks", JINSTRUCT_LM_EVAL_AUTOLOAD="0").stdout)
    assert not set(OUR_TASKS) & hidden and "hellaswag" in hidden


def test_plain_lm_eval_runs_our_tasks_with_hf_fast_and_hf(env, tiny_lm):
    common = ["--model_args", f"pretrained={tiny_lm},dtype=float32", "--tasks", "jnli_v03,marcja_v02,vqa_ppl",
              "--metadata", json.dumps(env.data), "--limit", "4", "--device", "cpu"]  # fmt: skip
    results = {}
    for model in ("hf-fast", "hf"):
        out = env.work / f"out-{model}"
        stdout = env.run("lm_eval", "--model", model, *common, "--output_path", str(out)).stdout
        for task in ("jnli_v03", "marcja_v02", "vqa_ppl"):
            assert re.search(rf"^\|\s*{task}\s*\|", stdout, re.M), stdout  # the printed table
        results[model] = _results(out)
    for task in ("jnli_v03", "marcja_v02"):
        assert results["hf-fast"][task]["acc,none"] == results["hf"][task]["acc,none"]
    assert results["hf-fast"]["vqa_ppl"]["ppl_paper,none"] == pytest.approx(
        results["hf"]["vqa_ppl"]["ppl_paper,none"], rel=1e-4
    )


def test_validate_and_the_python_api_without_jinstruct(wheel_env, tiny_lm):
    assert "jnli_v03" in wheel_env.run("lm_eval", "validate", "--tasks", "jnli_v03").stdout
    code = (
        "import sys, lm_eval\n"
        f"r = lm_eval.simple_evaluate(model='hf-fast', model_args='pretrained={tiny_lm},dtype=float32', "
        f"tasks=['jnli_v03'], limit=2, device='cpu', metadata={wheel_env.data!r})\n"
        "print('ACC', r['results']['jnli_v03']['acc,none'], type(r['config']['model']).__name__ if not "
        "isinstance(r['config']['model'], str) else r['config']['model'])\n"
    )
    out = wheel_env.run("python", "-c", code).stdout
    assert re.search(r"^ACC [0-9.]+ hf-fast$", out, re.M), out


def test_leaderboard_and_demo_from_the_wheel(wheel_env):
    # Gathered lm-eval results, as `lm_eval --output_path` writes them (a tuned/base pair of the paper's).
    gathered = wheel_env.work / "gathered"
    for name, args, acc in (
        ("calm", "pretrained=cyberagent/open-calm-7b", 0.30),
        ("stormy", "pretrained=cyberagent/open-calm-7b,peft=izumi-lab/stormy-7b-10ep", 0.45),
    ):
        result = {
            "results": {"jnli_v03": {"acc,none": acc, "acc_stderr,none": 0.01}},
            "n-shot": {"jnli_v03": 1},
            "config": {"model_args": args},
            "lm_eval_version": "0.4.13",
        }
        (gathered / name).mkdir(parents=True)
        (gathered / name / "results_2026-01-01.json").write_text(json.dumps(result))
    stdout = wheel_env.run(
        "jinstruct", "leaderboard", "--render-only", "--gather", str(gathered), "--out", "lb"
    ).stdout
    md = (wheel_env.work / "lb" / "leaderboard.md").read_text(encoding="utf-8")
    for name in PAPER_ROWS:  # the reference rows ship inside the wheel
        assert f"| _{name}_ |" in md, name
    assert "0.302*†" in md and "38.8‡" in md and "a reading of a garbled" in stdout
    assert "The paper, same pair (Stormy (Instruct CALM) (paper) vs CALM (paper))" in md
    assert "usage: jinstruct demo" in wheel_env.run("jinstruct", "demo", "--help").stdout
