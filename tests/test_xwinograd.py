"""XWinograd-ja: the original file's rows rebuilt, the reference's strict tuple comparison, and the
empty context under both tokenizations, stock `hf` and `hf-fast` alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import jinstruct.scoring  # noqa: F401  (registers hf-fast)
from jinstruct.harness_tasks import tasks_dir
from jinstruct.harness_tasks.xwinograd.data import XWinogradDataError, rows_from_tsv
from jinstruct.harness_tasks.xwinograd.task import gold_wins

# Made-up schemas (not from XWinograd): (tokens, pronoun index, candidate indices, referent 0/1).
SCHEMAS = [
    (["花子", "は", "母", "に", "電話した。", "彼女", "は", "心配していた", "からだ。"], 5, (0, 2), 1),
    (["花子", "は", "母", "に", "電話した。", "彼女", "は", "用事があった", "からだ。"], 5, (0, 2), 0),
    (["箱", "は", "机", "に", "入らなかった。", "それ", "が", "大きすぎた", "からだ。 "], 5, (0, 2), 0),
    (["犬", "が", "猫", "を", "追いかけた。", "それ", "は", "怖がっていた", "からだ。"], 5, (0, 2), 1),
]


def tsv_line(lang: str, tokens: list[str], p: int, cands: tuple[int, int], referent: int) -> str:
    pronoun = [tokens[p], [p, p + 1], [tokens[p]]]
    candidates = [[tokens[c], [c, c + 1], [tokens[c]], i == referent] for i, c in enumerate(cands)]
    cols = [
        lang,
        "test",
        "?",
        "".join(tokens),
        json.dumps(tokens),
        json.dumps(pronoun),
        json.dumps(candidates),
    ]
    return "\t".join(cols) + "\n"


@pytest.fixture(scope="module")
def xwinograd_tsv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("xwinograd") / "dataset.tsv"
    lines = [tsv_line("en", ["The", "dog", "saw", "it", "."], 3, (1, 0), 0)]
    lines += [tsv_line("jp", *s) for s in SCHEMAS]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_rows_rebuilt_from_the_original_file(xwinograd_tsv):
    rows = rows_from_tsv(xwinograd_tsv)
    assert len(rows) == len(SCHEMAS)  # the en row is not read
    assert rows[0] == {
        "sentence1": "花子は母に電話した。花子は心配していたからだ。",
        "sentence2": "花子は母に電話した。母は心配していたからだ。",
        "answer": "2",
    }
    assert rows[1]["answer"] == "1"
    assert rows[2]["sentence1"].endswith("からだ。 ")  # never stripped


def test_bad_rows_name_file_and_line(tmp_path):
    bad = tmp_path / "dataset.tsv"
    tokens, p, cands, _ = SCHEMAS[0]
    line = tsv_line("jp", tokens, p, cands, 0).replace("true", "false")
    bad.write_text(tsv_line("jp", *SCHEMAS[1]) + line, encoding="utf-8")
    with pytest.raises(
        XWinogradDataError, match=r"dataset.tsv, line 2: expected two candidates, exactly one"
    ):
        rows_from_tsv(bad)
    only_en = tmp_path / "en.tsv"
    only_en.write_text(tsv_line("en", ["a", "b"], 0, (1, 0), 0), encoding="utf-8")
    with pytest.raises(XWinogradDataError, match="no `jp` rows"):
        rows_from_tsv(only_en)


def test_hub_unreachable_says_how_to_score_offline():
    from jinstruct.harness_tasks.xwinograd.data import load_xwinograd

    with pytest.raises(XWinogradDataError, match=r"polm-stability/xwinograd-ja.*xwinograd_path"):
        load_xwinograd()


@pytest.mark.parametrize(
    ("answer", "results", "won"),
    [
        ("1", [(-5.0, False), (-6.0, False)], True),
        ("2", [(-5.0, False), (-6.0, False)], False),
        ("2", [(-7.0, True), (-6.0, False)], True),
        ("1", [(-6.0, True), (-6.0, False)], True),  # exact tie: is_greedy decides
        ("2", [(-6.0, True), (-6.0, False)], False),
        ("1", [(-6.0, False), (-6.0, False)], False),  # full tie: neither is larger
        ("2", [(-6.0, False), (-6.0, False)], False),
    ],
)
def test_strictly_larger_tuple_wins(answer, results, won):
    assert gold_wins(answer, results) is won


def evaluate(backend: str, model_dir: Path, tsv: Path, **model_args) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=str(tasks_dir() / "xwinograd"),
        include_defaults=False,
        metadata={"xwinograd_path": str(tsv)},
    )
    return simple_evaluate(
        model=backend,
        model_args={"pretrained": str(model_dir), "dtype": "float32", **model_args},
        tasks=["xwinograd_ja"],
        task_manager=manager,
        device="cpu",
        batch_size=4,
        log_samples=True,
        bootstrap_iters=0,
    )


def direct_scores(model_dir: Path, prefix_token: str, sentences: list[str]) -> list[tuple[float, bool]]:
    """log P(sentence | one prefix token), written out: the sentence encoded without special tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    for s in sentences:
        cont = tok(s, add_special_tokens=False)["input_ids"]
        ids = [getattr(tok, f"{prefix_token}_token_id"), *cont]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids[:-1]])).logits[0], dim=-1)
        target = torch.tensor(cont)
        out.append(
            (logprobs.gather(1, target[:, None]).sum().item(), bool((logprobs.argmax(-1) == target).all()))
        )
    return out


def responses(run: dict) -> tuple[list, list[tuple[float, bool]]]:
    samples = sorted(run["samples"]["xwinograd_ja"], key=lambda s: s["doc_id"])
    args = [a for s in samples for a in s["arguments"]]
    return args, [(float(r[0]), bool(r[1])) for s in samples for r in s["filtered_resps"]]


def test_empty_context_under_both_tokenizations(tiny_lm, xwinograd_tsv):
    """Stock hf and hf-fast give the same numbers (lm-eval's rule: the prefix token, BOS here); with
    tokenization=reference the empty context is [eos], as in the reference."""
    stock = evaluate("hf", tiny_lm, xwinograd_tsv)
    fast = evaluate("hf-fast", tiny_lm, xwinograd_tsv)
    reference = evaluate("hf-fast", tiny_lm, xwinograd_tsv, tokenization="reference")
    args, stock_scores = responses(stock)
    sentences = [cont for ctx, cont in args]
    assert all(ctx == "" for ctx, _ in args) and len(args) == 2 * len(SCHEMAS)
    assert sentences[4].endswith("からだ。 ")
    for run in (fast, reference):
        assert responses(run)[0] == args
    for (a, ga), (b, gb), (c, gc) in zip(
        stock_scores, responses(fast)[1], direct_scores(tiny_lm, "bos", sentences), strict=True
    ):
        assert abs(a - b) <= 1e-4 and abs(a - c) <= 1e-4 and ga == gb == gc
    ref_scores = responses(reference)[1]
    for (a, ga), (b, gb) in zip(ref_scores, direct_scores(tiny_lm, "eos", sentences), strict=True):
        assert abs(a - b) <= 1e-4 and ga == gb
    assert max(abs(a[0] - b[0]) for a, b in zip(ref_scores, stock_scores)) > 1e-3  # BOS and EOS differ here
    # acc follows the per-pair comparison of the logged results.
    expected = [
        float(gold_wins(s["doc"]["answer"], [(float(r[0]), bool(r[1])) for r in s["filtered_resps"]]))
        for s in sorted(reference["samples"]["xwinograd_ja"], key=lambda s: s["doc_id"])
    ]
    assert reference["results"]["xwinograd_ja"]["acc,none"] == pytest.approx(sum(expected) / len(expected))
    assert stock["results"]["xwinograd_ja"]["acc,none"] == fast["results"]["xwinograd_ja"]["acc,none"]
