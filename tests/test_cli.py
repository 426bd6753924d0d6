"""The `jinstruct` dispatcher and the task folder."""

from __future__ import annotations

from jinstruct.cli import COMMANDS, main
from jinstruct.harness_tasks import tasks_dir


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_an_error(capsys):
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


def test_tasks_dir_prints_the_folder_last(capsys):
    assert main(["tasks-dir"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == str(tasks_dir())


def test_ja_paper_group_lists_the_paper_tasks():
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    assert {"jnli_v02", "jnli_v03", "marcja_v02", "marcja_v03", "vqa_ppl", "ja_paper"} <= set(
        manager.all_tasks
    )
    import yaml

    group = yaml.safe_load((tasks_dir() / "jglue" / "ja_paper.yaml").read_text(encoding="utf-8"))
    assert group["task"] == ["jnli_v02", "jnli_v03", "marcja_v02", "marcja_v03", "vqa_ppl"]
