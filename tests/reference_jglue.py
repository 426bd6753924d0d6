"""An independent re-implementation of the reference harness's JGLUE prompts and few-shot draw,
written from the reference harness's behaviour (docs/jglue-tasks.md), for the tests to compare the tasks against.
It shares no code with jinstruct on purpose: the prompt strings are typed again here, not imported.
"""

from __future__ import annotations

import random

JNLI_EN = ["entailment", "contradiction", "neutral"]
JNLI_JA = ["含意", "矛盾", "中立"]
MARC_EN = ["positive", "negative"]
MARC_JA = ["ポジティブ", "ネガティブ"]

ALPACA = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
)
JNLI_INSTRUCTION = "与えられた前提と仮説の関係を回答してください。\n\n出力は以下から選択してください：\n"
MARC_INSTRUCTION = (
    "以下の製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。"
)


def jnli_prompt(version: str, labels: list[str]):
    """(description, doc_to_text, sep) for JNLI."""
    if version == "0.2":
        desc = (
            "前提と仮説の関係を含意、矛盾、中立の中から回答してください。\n\n制約:\n"
            "- 前提から仮説が、論理的知識や常識的知識を用いて導出可能である場合は含意と出力\n"
            "- 前提と仮説が両立しえない場合は矛盾と出力\n- そのいずれでもない場合は中立と出力\n\n"
        )
        for ja, word in zip(JNLI_JA, labels):
            desc = desc.replace(ja, word)
        return desc, lambda d: f"前提:{d['sentence1']}\n仮説:{d['sentence2']}\n関係:", "\n\n"
    if version == "0.3":
        inst = JNLI_INSTRUCTION + "\n".join(labels)
        return (
            ALPACA,
            lambda d: (
                f"### 指示:\n{inst}\n\n### 入力:\n前提：{d['sentence1']}\n仮説：{d['sentence2']}\n\n### 応答:\n"
            ),
            "\n\n",
        )
    if version in ("0.4", "0.5"):
        nl = "<NL>" if version == "0.4" else "\n"
        desc = (
            "ユーザー: 与えられた前提と仮説の関係を回答してください。出力は以下から選択してください："
            "<NL>含意<NL>矛盾<NL>中立<NL>システム: 分かりました。<NL>"
        ).replace("<NL>", nl)
        return desc, lambda d: f"ユーザー: 前提：{d['sentence1']}{nl}仮説：{d['sentence2']}{nl}システム: ", nl
    if version == "0.6":
        inst = JNLI_INSTRUCTION + "\n".join(labels)
        return (
            "<s>[INST] <<SYS>>\nあなたは役立つアシスタントです。\n<</SYS>>\n\n",
            lambda d: f"{inst}\n\n前提：{d['sentence1']}\n仮説：{d['sentence2']} [/INST] ",
            " </s><s>[INST] ",
        )
    raise KeyError(version)


def marc_prompt(version: str):
    if version == "0.2":
        return (
            "製品レビューをnegativeかpositiveのいずれかのセンチメントに分類してください。出力は小文字化してください。 \n\n",
            lambda d: f"製品レビュー:{d['sentence']}\nセンチメント:",
            "\n\n",
        )
    if version == "0.3":
        return (
            ALPACA,
            lambda d: f"### 指示:\n{MARC_INSTRUCTION}\n\n### 入力:\n{d['sentence']}\n\n### 応答:\n",
            "\n\n",
        )
    if version in ("0.4", "0.5"):
        nl = "<NL>" if version == "0.4" else "\n"
        desc = (
            "ユーザー: 与えられた製品レビューを、ポジティブまたはネガティブの感情クラスのいずれかに分類してください。"
            "<NL>システム: 分かりました。<NL>"
        ).replace("<NL>", nl)
        return desc, lambda d: f"ユーザー: {d['sentence']}{nl}システム: ", nl
    if version == "0.6":
        return (
            "<s>[INST] <<SYS>>\nあなたは役立つアシスタントです。\n<</SYS>>\n\n",
            lambda d: f"{MARC_INSTRUCTION}\n\n{d['sentence']} [/INST] ",
            " </s><s>[INST] ",
        )
    raise KeyError(version)


# task name -> (family, prompt version, label words, stratified)
TASKS = {
    "jnli_v02": ("jnli", "0.2", JNLI_EN, False),
    "jnli_v03": ("jnli", "0.3", JNLI_EN, False),
    **{f"jnli13_v0{v}": ("jnli", f"0.{v}", JNLI_JA, True) for v in "23456"},
    "marcja_v02": ("marcja", "0.2", MARC_EN, False),
    **{f"marcja_v0{v}": ("marcja", f"0.{v}", MARC_JA, False) for v in "3456"},
}


def stratified_sample(train_docs, k, rnd, target):
    """The reference's stratified few-shot draw, on documents, as the spec words it."""
    groups: dict[str, list] = {}
    for doc in train_docs:
        groups.setdefault(target(doc), []).append(doc)
    ratio = {t: len(g) / len(train_docs) for t, g in groups.items()}
    n = {t: int(ratio[t] * k) for t in groups}
    while sum(n.values()) < k:
        smallest = min(n.values())
        first = next(t for t in groups if n[t] == smallest)
        n[first] += 1
    samples = []
    for t, g in groups.items():
        samples += rnd.sample(g, n[t])
    rnd.shuffle(samples)
    return samples


def reference_contexts(task: str, train_docs: list[dict], valid_docs: list[dict], k: int) -> list[str]:
    """The context of every validation doc, in dataset order, as the reference builds it.

    Docs carry `label` as the gold index.
    """
    family, version, labels, stratified = TASKS[task]
    desc, doc_to_text, sep = jnli_prompt(version, labels) if family == "jnli" else marc_prompt(version)

    def target(d):
        return labels[d["label"]]

    def draw(rnd):
        return stratified_sample(train_docs, k, rnd, target) if stratified else rnd.sample(train_docs, k)

    return contexts_in_reference_order(valid_docs, k, desc, doc_to_text, target, sep, draw)


def contexts_in_reference_order(valid_docs, k, desc, doc_to_text, doc_to_target, sep, draw) -> list[str]:
    """Random(42) shuffles the docs; each doc's shots then come from `draw(rnd)`, same stream, in
    shuffled order. Returned in dataset order."""
    order = list(enumerate(valid_docs))
    rnd = random.Random()
    rnd.seed(42)
    rnd.shuffle(order)
    contexts: dict[int, str] = {}
    for i, doc in order:
        if k == 0:
            contexts[i] = desc + doc_to_text(doc)
            continue
        shots = draw(rnd)
        contexts[i] = (
            desc + sep.join(doc_to_text(s) + doc_to_target(s) for s in shots) + sep + doc_to_text(doc)
        )
    return [contexts[i] for i in range(len(valid_docs))]
