"""Made-up data for the JP Eval generation tasks, written in each dataset's original file layout.

All text is generated here from small word lists (original sentences, not taken from any dataset).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PLACES = ["北山町", "青葉市", "南浜村", "白川郡", "東雲町", "若草市"]
THINGS = ["図書館", "美術館", "駅舎", "灯台", "市場", "橋", "学校", "神社"]
YEARS = ["1901年", "1925年", "1950年", "1968年", "1984年", "2003年"]
PEOPLE = ["田中", "佐藤", "鈴木", "高橋", "伊藤", "山本"]


def _sentence(rnd: random.Random) -> str:
    return f"{rnd.choice(PLACES)}の{rnd.choice(THINGS)}は{rnd.choice(YEARS)}に{rnd.choice(PEOPLE)}によって建てられた"


def jsquad_rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        place, thing = rnd.choice(PLACES), rnd.choice(THINGS)
        passage = (
            "。".join(_sentence(rnd) for _ in range(rnd.randint(1, 4))) + f"。{place}の{thing}は有名である。"
        )
        answers = [place, f"{place}の{thing}"][: rnd.randint(1, 2)]
        rows.append(
            {
                "id": f"q{seed}-{i}",
                "title": thing,
                "context": f"{thing} [SEP] {passage}",
                "question": f"有名な{thing}があるのはどこか？",
                "answers": {"text": answers},
            }
        )
    return rows


def write_jsquad(root: Path, train: list[dict], valid: list[dict], version: str = "1.1") -> Path:
    folder = root / "datasets" / f"jsquad-v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, rows in (("train", train), ("valid", valid)):
        # SQuAD layout: articles -> paragraphs -> qas; one article per title run, one paragraph per row
        data: list[dict] = []
        for r in rows:
            if not data or data[-1]["title"] != r["title"]:
                data.append({"title": r["title"], "paragraphs": []})
            data[-1]["paragraphs"].append(
                {
                    "context": r["context"],
                    "qas": [
                        {
                            "question": r["question"],
                            "id": r["id"],
                            "is_impossible": False,
                            "answers": [{"text": t, "answer_start": 0} for t in r["answers"]["text"]],
                        }
                    ],
                }
            )
        (folder / f"{stem}-v{version}.json").write_text(
            json.dumps({"version": version, "data": data}, ensure_ascii=False), encoding="utf-8"
        )
    return root


def mgsm_rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rnd.randint(2, 60), rnd.randint(2, 60)
        extra = "".join(
            f"{rnd.choice(PEOPLE)}さんは{rnd.choice(THINGS)}に行きました。" for _ in range(rnd.randint(0, 6))
        )
        rows.append(
            {
                "question": f"{rnd.choice(PEOPLE)}さんはりんごを{a}個持っています。{extra}さらに{b}個もらいました。"
                "全部で何個ですか？",
                "answer_number": a + b,
            }
        )
    return rows


def write_mgsm(folder: Path, test: list[dict], exemplars: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{r['question']}\t{r['answer_number']:,}" for r in test]
    (folder / "mgsm_ja.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shots = {
        str(i + 1): {
            "q": "問題：" + e["question"],
            "a": f"ステップごとの答え：足すと{e['answer_number']}です。答えは{e['answer_number']}です。",
        }
        for i, e in enumerate(exemplars)
    }
    source = (
        '"""Exemplars written for the tests (url-nlp layout)."""\n'
        f"EXEMPLAR_NUMBER_ANSWERS = {[e['answer_number'] for e in exemplars]!r}\n"
        "EXEMPLAR_EQUATION_SOLUTIONS = []\n"
        f"MGSM_EXEMPLARS = {{\n    'en': {{}},\n    'ja': {json.dumps(shots, ensure_ascii=True, indent=4)},\n}}\n"
        "raise SystemExit('this file must be read as data, never executed')\n"
    )
    (folder / "exemplars.py").write_text(source, encoding="utf-8")
    return folder


def jaqket_items(n: int, seed: int, n_ctxs: int = 7) -> list[dict]:
    """Retriever-output questions; about one in five has its answer only beyond the 5th passage."""
    rnd = random.Random(seed)
    items = []
    for i in range(n):
        person = rnd.choice(PEOPLE)
        ctxs = [
            {
                "id": str(j),
                "title": rnd.choice(THINGS),
                "text": _sentence(rnd) + "。",
                "score": 10.0 - j,
                "has_answer": False,
            }
            for j in range(n_ctxs)
        ]
        hit = rnd.choice([0, 1, 2, 3, 4, 6])
        ctxs[hit]["has_answer"] = True
        ctxs[hit]["text"] += f"設計したのは{person}である。"
        items.append(
            {
                "qid": f"QA{seed}-{i}",
                "question": f"{rnd.choice(THINGS)}を設計した人物は誰でしょう？",
                "answers": [person] + ([person + "氏"] if i % 3 == 0 else []),
                "ctxs": ctxs,
            }
        )
    return items


def write_jaqket(folder: Path, train: list[dict], valid: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_jaqket_59.350.json").write_text(json.dumps(train, ensure_ascii=False), encoding="utf-8")
    (folder / "dev_jaqket_59.350.json").write_text(json.dumps(valid, ensure_ascii=False), encoding="utf-8")
    return folder


def xlsum_rows(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    return [
        {
            "id": f"x{seed}-{i}",
            "url": "",
            "title": rnd.choice(THINGS),
            "summary": _sentence(rnd) + "。",
            "text": "。".join(_sentence(rnd) for _ in range(rnd.randint(2, 12))) + "。",
        }
        for i in range(n)
    ]


def write_xlsum(folder: Path, train: list[dict], test: list[dict]) -> Path:
    import csv

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        with open(folder / "data" / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["id", "url", "title", "summary", "text"])
            w.writeheader()
            w.writerows(rows)
    return folder


def write_generation_data(root: Path, n_eval: int = 9) -> dict[str, str]:
    """All four datasets under `root`, `n_eval` evaluation rows each; returns the task metadata keys."""
    return {
        "data_dir": str(write_jsquad(root / "JGLUE", jsquad_rows(12, 1), jsquad_rows(n_eval, 2))),
        "mgsm_dir": str(write_mgsm(root / "mgsm", mgsm_rows(n_eval, 3), mgsm_rows(8, 4))),
        "jaqket_dir": str(write_jaqket(root / "jaqket", jaqket_items(10, 5), jaqket_items(n_eval, 6))),
        "xlsum_dir": str(write_xlsum(root / "xlsum", xlsum_rows(8, 7), xlsum_rows(n_eval, 8))),
    }


# One task per dataset and every kind of stop: MGSM's EOS text, JSQuAD's "\n", 0.4's literal `<NL>`.
GENERATION_TASKS = ["mgsm_v00", "jsquad_v05", "jsquad12_v04", "jaqket2_v01", "xlsum_v04"]
GENERATION_MAX_LENGTH = 700  # so MGSM drops shots and XLSum truncates articles


def generation_task_manager(model: Path, root: Path):
    """A TaskManager over the shipped tasks, reading the generated data under `root`."""
    from lm_eval.tasks import TaskManager

    from jinstruct.harness_tasks import tasks_dir

    metadata = {
        "pretrained": str(model),
        **write_generation_data(root),
        "jp_eval_max_length": GENERATION_MAX_LENGTH,
    }
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=metadata)


def evaluate_generation_tasks(model: Path, manager, backend: str = "hf", **model_args) -> dict:
    """`simple_evaluate` of GENERATION_TASKS on `model`, 3 docs each, samples logged."""
    from lm_eval import simple_evaluate

    return simple_evaluate(
        model=backend,
        model_args={
            "pretrained": str(model),
            "max_length": GENERATION_MAX_LENGTH,
            "dtype": "float32",
            **model_args,
        },
        tasks=GENERATION_TASKS,
        task_manager=manager,
        limit=3,
        log_samples=True,
        batch_size=2,
        device="cpu",
    )
