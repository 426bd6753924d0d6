"""One build step on top of pyproject.toml: put `jinstruct-lm-eval.pth` into site-packages.

The file's one line starts `jinstruct.lm_eval_hook` (see that module), which lets plain `lm_eval`
find the jinstruct tasks and the `hf-fast` model. setuptools ships package data only inside
packages, and an editable wheel holds nothing from `build_lib`, so a `build` sub-command writes the
file: into `build_lib` for a wheel, into the editable wheel's own folder for `pip install -e .`.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build

# Sorts after `__editable__.jinstruct-*.pth`, whose finder makes `jinstruct` importable in an
# editable install; site-packages runs .pth files in name order.
PTH_NAME = "jinstruct-lm-eval.pth"
# site runs a .pth line only when it starts with "import"; the guard keeps any failure (a deleted
# editable checkout, a broken install) from printing errors at every Python start.
PTH_LINE = (
    'import sys; exec("try:\\n import jinstruct.lm_eval_hook as h; h.install()\\nexcept Exception: pass")\n'
)


class build_lm_eval_pth(Command):
    description = f"write {PTH_NAME} (the lm_eval start-up hook) for site-packages"
    user_options: list = []

    def initialize_options(self) -> None:
        self.build_lib = None
        self.editable_mode = False

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))

    def run(self) -> None:
        # An editable wheel is made of what lands in its unpacked folder (install_lib), not build_lib.
        root = self.get_finalized_command("install").install_lib if self.editable_mode else self.build_lib
        target = Path(root, PTH_NAME)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(PTH_LINE, encoding="ascii")

    def get_outputs(self) -> list[str]:
        return [str(Path(self.build_lib, PTH_NAME))]

    def get_source_files(self) -> list[str]:
        return []

    def get_output_mapping(self) -> dict[str, str]:
        return {}


class build_with_pth(build):
    sub_commands = [*build.sub_commands, ("build_lm_eval_pth", None)]


setup(cmdclass={"build": build_with_pth, "build_lm_eval_pth": build_lm_eval_pth})
