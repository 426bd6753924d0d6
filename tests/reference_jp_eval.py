"""An independent re-implementation of the reference harness's JP Eval generation prompts, few-shot
stream, over-length retries and XLSum truncation, written from the suite's spec and the
reference's task classes, for the tests to compare the tasks against. It shares no code with
jinstruct on purpose: the strings are typed again here, class by class (DESCRIPTION, SEP, FEWSHOT_SEP,
doc_to_text), and the evaluator loop is written out as the reference runs it.
"""

from __future__ import annotations

import random

ALPACA = (
    "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。\n\n"
)
LLAMA2 = "<s>[INST] <<SYS>>\nあなたは役立つアシスタントです。\n<</SYS>>\n\n"
LLAMA2_SEP = " </s><s>[INST] "
EXTRACT = "与えられた文脈から、質問に対する答えを抜き出してください。"


def _passage(doc):
    return doc["context"].split("[SEP]")[-1].strip()


class RefTask:
    """DESCRIPTION, SEP, FEWSHOT_SEP and doc_to_text/doc_to_target of one reference class."""

    def __init__(self, description, sep, doc_to_text, doc_to_target, fewshot_sep=None):
        self.description, self.sep, self.doc_to_text, self.doc_to_target = (
            description,
            sep,
            doc_to_text,
            doc_to_target,
        )
        self.fewshot_sep = fewshot_sep if fewshot_sep is not None else sep + sep

    def fewshot_context(self, doc, shots):
        if not shots:
            return self.description + self.doc_to_text(doc)
        labeled = (
            self.fewshot_sep.join(self.doc_to_text(s) + self.doc_to_target(s) for s in shots)
            + self.fewshot_sep
        )
        return self.description + labeled + self.doc_to_text(doc)


def jsquad(version: str, v12: bool = False) -> RefTask:
    target = lambda d: d["answers"]["text"][0]  # noqa: E731
    if version == "0.1":
        return RefTask(
            "[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n",
            "\n",
            lambda d: (
                "[題名]:"
                + d["title"]
                + "\n"
                + "[問題]:"
                + _passage(d)
                + "\n"
                + "[質問]:"
                + d["question"]
                + "\n"
                + "[答え]:"
            ),
            target,
        )
    if version == "0.2":
        if v12:
            return RefTask(
                "質問に対する回答を題名と文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
                "\n",
                lambda d: (
                    "題名:"
                    + d["title"]
                    + "\n"
                    + "文章:"
                    + _passage(d)
                    + "\n"
                    + "質問:"
                    + d["question"]
                    + "\n"
                    + "回答:"
                ),
                target,
            )
        return RefTask(
            "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
            "\n",
            lambda d: "文章:" + _passage(d) + "\n" + "質問:" + d["question"] + "\n" + "回答:",
            target,
        )
    if version == "0.3":

        def text(d):
            inp = (
                f"文脈：{d['title']}\n{_passage(d)}\n質問：{d['question']}"
                if v12
                else f"文脈：{_passage(d)}\n質問：{d['question']}"
            )
            return f"### 指示:\n{EXTRACT}\n\n### 入力:\n{inp}\n\n### 応答:\n"

        return RefTask(ALPACA, "\n", text, target)
    if version in ("0.4", "0.5"):
        sep = "<NL>" if version == "0.4" else "\n"
        desc = f"ユーザー: {EXTRACT}{sep}システム: 分かりました。{sep}"

        def text(d):
            inp = (
                f"文脈：{d['title']}{sep}{_passage(d)}{sep}質問：{d['question']}"
                if v12
                else f"文脈：{_passage(d)}{sep}質問：{d['question']}"
            )
            return f"ユーザー: {inp}{sep}システム: "

        return RefTask(desc, sep, text, target, fewshot_sep=sep)
    if version == "0.6":

        def text(d):
            inp = (
                f"文脈：{d['title']}\n{_passage(d)}\n質問：{d['question']}"
                if v12
                else f"文脈：{_passage(d)}\n質問：{d['question']}"
            )
            return f"{EXTRACT}\n\n{inp} [/INST] "

        return RefTask(LLAMA2, "\n", text, target, fewshot_sep=LLAMA2_SEP)
    raise KeyError(version)


def jaqket(version: str) -> RefTask:
    target = lambda d: d["answers"]["text"][0]  # noqa: E731
    if version == "0.1":

        def text(d):
            cand = "\n".join(
                "[題名]:" + t + "\n" + "[問題]:" + c for t, c in zip(d["ctxs"]["title"], d["ctxs"]["text"])
            )
            return cand + "\n" + "[質問]:" + d["question"] + "\n" + "[答え]:"

        return RefTask(
            "[題名]と[問題]から[質問]に対する[答え]を抜き出しなさい\n\n",
            "\n",
            text,
            target,
            fewshot_sep="\n\n",
        )
    if version == "0.2":
        return RefTask(
            "質問に対する回答を文章から一言で抽出してください。回答は名詞で答えてください。\n\n",
            "\n",
            lambda d: (
                "文章:" + "\n".join(d["ctxs"]["text"]) + "\n" + "質問:" + d["question"] + "\n" + "回答:"
            ),
            target,
            fewshot_sep="\n\n",
        )
    if version == "0.3":
        return RefTask(
            ALPACA,
            "\n",
            lambda d: (
                f"### 指示:\n{EXTRACT}\n\n### 入力:\n文脈："
                + "\n".join(d["ctxs"]["text"])
                + f"\n質問：{d['question']}\n\n### 応答:\n"
            ),
            target,
            fewshot_sep="\n\n",
        )
    if version in ("0.4", "0.5"):
        sep = "<NL>" if version == "0.4" else "\n"
        return RefTask(
            f"ユーザー: {EXTRACT}{sep}システム: 分かりました。{sep}",
            sep,
            lambda d: (
                "ユーザー: 文脈："
                + sep.join(d["ctxs"]["text"])
                + f"{sep}質問：{d['question']}{sep}システム: "
            ),
            target,
            fewshot_sep=sep,
        )
    if version == "0.6":
        return RefTask(
            LLAMA2,
            "\n",
            lambda d: (
                f"{EXTRACT}\n\n文脈：" + "\n".join(d["ctxs"]["text"]) + f"\n質問：{d['question']} [/INST] "
            ),
            target,
            fewshot_sep=LLAMA2_SEP,
        )
    raise KeyError(version)


SUMMARISE = "与えられたニュース記事を要約してください。"


def xlsum(version: str):
    """(RefTask, ctx_prompt, summary_prompt, post-replace)."""
    target = lambda d: d["summary"]  # noqa: E731
    if version == "0.0":
        return (
            RefTask(SUMMARISE + "\n\n", "\n", lambda d: f"ニュース記事:{d['text']}\n要約:", target),
            "ニュース記事:",
            "要約:",
            False,
        )
    if version == "0.3":
        return (
            RefTask(
                ALPACA,
                "\n",
                lambda d: f"### 指示:\n{SUMMARISE}\n\n### 入力:\nニュース記事:{d['text']}\n\n### 応答:\n",
                target,
            ),
            f"### 指示:\n{SUMMARISE}\n\n### 入力:\n",
            "### 応答:\n",
            False,
        )
    if version in ("0.4", "0.5"):
        sep = "<NL>" if version == "0.4" else "\n"
        return (
            RefTask(
                f"ユーザー: {SUMMARISE}{sep}システム: 分かりました。{sep}",
                sep,
                lambda d: f"ユーザー: ニュース記事:{d['text']}{sep}システム: ",
                target,
                fewshot_sep=sep,
            ),
            "ユーザー: ",
            f"{sep}システム: ",
            True,
        )
    if version == "0.6":
        return (
            RefTask(
                LLAMA2,
                "\n",
                lambda d: f"{SUMMARISE}\n\nニュース記事:{d['text']} [/INST] ",
                target,
                fewshot_sep=LLAMA2_SEP,
            ),
            f"{SUMMARISE}\n\n",
            " [/INST] ",
            False,
        )
    raise KeyError(version)


def mgsm(version: str) -> RefTask:
    def target(d):
        return "" + d["answer"].replace("ステップごとの答え：", "")

    def q(d):
        return d["question"].replace("問題：", "")

    if version == "0.0":
        return RefTask("", "\n", lambda d: f"問題：{q(d)}\nステップごとの答え：", target)
    if version == "0.3":
        return RefTask(
            ALPACA,
            "\n",
            lambda d: (
                "### 指示:\n与えられた問題に対して、ステップごとに答えを導き出してください。"
                f"\n\n### 入力:\n{q(d)}\n\n### 応答:\n"
            ),
            target,
        )
    if version in ("0.4", "0.5"):
        nl = "<NL>" if version == "0.4" else "\n"
        return RefTask(
            f"ユーザー: 与えられた問題をステップごとに解説してください。{nl}システム: 分かりました。{nl}",
            "\n",
            lambda d: f"ユーザー: 問題：{q(d)}<NL>システム: ステップごとの答え：",
            target,
            fewshot_sep=nl,
        )
    if version == "0.6":
        return RefTask(
            LLAMA2,
            "\n",
            lambda d: f"与えられた問題に対して、ステップごとに答えを導き出してください。\n\n{q(d)} [/INST] ",
            target,
            fewshot_sep=LLAMA2_SEP,
        )
    raise KeyError(version)


def xlsum_preprocess(ctx, max_length, tokenize, decode, sep, ctx_prompt, summary_prompt):
    """XLSumJa.preprocess_ctx as the reference writes it."""
    if len(tokenize(ctx)) <= max_length:
        return ctx
    ctxs = [f"{ctx_prompt}{c}" for c in ctx.split(ctx_prompt)]
    description = ""
    if summary_prompt not in ctxs[0]:
        description = ctxs[0].replace(ctx_prompt, "")
        ctxs = ctxs[1:]
    max_length_per_shot = max_length // len(ctxs)
    res = description
    for c in ctxs:
        text, summary = c.split(summary_prompt)
        sentences = text.split("。")
        c_res = ""
        add_sentences = []
        for s in sentences:
            tmp = add_sentences + [s]
            if len(tokenize("。".join(tmp))) > max_length_per_shot:
                if len(add_sentences) > 0:
                    add_sentences[-1] += "。" + sep
                else:
                    add_sentences.append(decode(tokenize(s)[:max_length_per_shot]) + sep)
                break
            add_sentences.append(s)
        c_res += "。".join(add_sentences)
        res += f"{c_res}{summary_prompt}{summary}"
    return res


def reference_run(
    family, version, train, docs, k, *, tokenize=None, decode=None, max_length=None, max_gen_toks=256
):
    """The context of every doc (dataset order) as the reference's evaluator builds them: docs shuffled
    with Random(42), shots drawn from the same stream, MGSM/JAQKET rebuild with one shot fewer (drawing
    again) while too long, XLSum truncated per article. None where not even 0 shots fit."""
    if family in ("jsquad", "jsquad12"):
        task = jsquad(version, v12=family == "jsquad12")
    elif family == "jaqket2":
        task = jaqket(version)
    elif family == "xlsum":
        task, ctx_prompt, summary_prompt, replace = xlsum(version)
    else:
        task = mgsm(version)
    order = list(enumerate(docs))
    rnd = random.Random()
    rnd.seed(42)
    rnd.shuffle(order)
    out = {}
    for i, doc in order:
        if family in ("mgsm", "jaqket2"):
            limit = max_length - (
                max_gen_toks if family == "mgsm" else max(len(tokenize(a)) for a in doc["answers"]["text"])
            )
            n, ctx = k, None
            while n >= 0:
                shots = rnd.sample(train, n) if n > 0 else []
                candidate = task.fewshot_context(doc, shots)
                if len(tokenize(candidate)) <= limit:
                    ctx = candidate
                    break
                n -= 1
            out[i] = ctx
            continue
        ctx = task.fewshot_context(doc, rnd.sample(train, k) if k > 0 else [])
        if family == "xlsum":
            ctx = xlsum_preprocess(
                ctx,
                max_length - (len(tokenize(doc["summary"])) + 10),
                tokenize,
                decode,
                task.sep,
                ctx_prompt,
                summary_prompt,
            )
            if replace:
                ctx = ctx.replace("<NL><NL>", "<NL>")
        out[i] = ctx
    return [out[i] for i in range(len(docs))]
