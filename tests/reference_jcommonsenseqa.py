"""An independent re-implementation of the reference harness's JCommonsenseQA prompts, written from
the reference's task classes (described in the README's "JP Eval suite" section), for the tests to
compare the tasks against. It shares no code with jinstruct: every string is typed again here; the draw order is the
JGLUE tests' own re-implementation.
"""

from __future__ import annotations

from reference_jglue import contexts_in_reference_order

ALPACA = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
)
VERSIONS = ("0.1", "0.2", "0.2.1", "0.3", "0.4", "0.5", "0.6")
TASKS = {f"jcommonsenseqa_v{v.replace('.', '')}": v for v in VERSIONS}


def _choices(doc):
    return [doc[f"choice{i}"] for i in range(5)]


def prompt(version: str):
    """(description, doc_to_text, doc_to_target, fewshot separator) of one prompt version."""

    def text_answer(d):
        return _choices(d)[d["label"]]

    if version == "0.1":
        return (
            "[問題]に対する[答え]を[選択肢]の中から選んでください。\n\n",
            lambda d: f"[問題]:{d['question']}\n[選択肢]:[{', '.join(_choices(d))}]\n[答え]:",
            text_answer,
            "\n\n",
        )
    if version == "0.2":
        return (
            "質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。"
            "なお、回答は選択肢の番号(例:0)でするものとします。 \n\n",
            lambda d: (
                "質問:"
                + d["question"]
                + "\n選択肢:"
                + ",".join(f"{i}.{c}" for i, c in enumerate(_choices(d)))
                + "\n回答:"
            ),
            lambda d: f"{d['label']}",  # the trap: the digit, while the texts are scored
            "\n\n",
        )
    if version == "0.2.1":
        return (
            "与えられた選択肢の中から、最適な答えを選んでください。 \n\n",
            lambda d: (
                "質問："
                + d["question"]
                + "\n選択肢：\n"
                + "\n".join("- " + c for c in _choices(d))
                + "\n回答："
            ),
            text_answer,
            "\n\n",
        )
    if version == "0.3":
        inst = "与えられた選択肢の中から、最適な答えを選んでください。"
        return (
            ALPACA,
            lambda d: (
                "### 指示:\n"
                + inst
                + "出力は以下から選択してください：\n"
                + "\n".join("- " + c for c in _choices(d))
                + "\n\n### 入力:\n"
                + d["question"]
                + "\n\n### 応答:\n"
            ),
            text_answer,
            "\n\n",
        )
    if version in ("0.4", "0.5"):
        nl = "<NL>" if version == "0.4" else "\n"
        desc = f"ユーザー: 与えられた選択肢の中から、最適な答えを選んでください。{nl}システム: 分かりました。{nl}"
        return (
            desc,
            lambda d: (
                "ユーザー: 質問："
                + d["question"]
                + nl
                + "選択肢："
                + nl
                + nl.join("- " + c for c in _choices(d))
                + nl
                + "システム: "
            ),
            text_answer,
            nl,
        )
    if version == "0.6":
        inst = "与えられた5つの選択肢の中から、最適な答えを選んでください。"
        return (
            "<s>[INST] <<SYS>>\nあなたは役立つアシスタントです。\n<</SYS>>\n\n",
            lambda d: (
                inst
                + "出力は以下から選択してください：\n"
                + "\n".join("- " + c for c in _choices(d))
                + "\n\n質問："
                + d["question"]
                + " [/INST] "
            ),
            text_answer,
            " </s><s>[INST] ",
        )
    raise KeyError(version)


def reference_contexts(version: str, train_docs: list[dict], valid_docs: list[dict], k: int) -> list[str]:
    """The context of every validation doc, in dataset order; shots are `rnd.sample(train, k)`."""
    desc, doc_to_text, doc_to_target, sep = prompt(version)
    return contexts_in_reference_order(
        valid_docs, k, desc, doc_to_text, doc_to_target, sep, lambda rnd: rnd.sample(train_docs, k)
    )
