"""vqa_ppl under stock lm-eval `--model hf`: every metric against direct transformers forward passes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import fugashi
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from jinstruct.harness_tasks import tasks_dir
from jinstruct.prompts import vqa_prompt

FIXTURE = Path(__file__).parent / "fixtures" / "vqa" / "question_answers.json"
METRICS = ("ppl_paper", "ppl_token", "ppl_char", "bits_per_byte", "ppl_word")


def _pairs() -> list[tuple[str, str]]:
    images = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return [(qa["question"], qa["answer"]) for image in images for qa in image["qas"]]


def hand_metrics(model_dir: Path, prompts: list[str], answers: list[str], add_bos: bool = False) -> dict:
    """The paper's recipe, written out: one forward over prompt+answer+EOS, mask len(tok(prompt))."""
    tok = AutoTokenizer.from_pretrained(model_dir, **({"add_bos_token": True} if add_bos else {}))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tagger = fugashi.Tagger()
    nll, ntok, nchar, nbyte, nword = [], [], [], [], []
    for prompt, answer in zip(prompts, answers):
        P = tok(prompt)["input_ids"]
        W = tok(prompt + answer + tok.eos_token)["input_ids"]
        assert (W[0] == tok.bos_token_id) == add_bos
        with torch.no_grad():
            logits = model(torch.tensor([W])).logits[0].double()
        logp = torch.log_softmax(logits[:-1], dim=-1)
        token_nll = -logp[torch.arange(len(W) - 1), torch.tensor(W[1:])]  # [i-1] is the NLL of W[i]
        nll.append(token_nll[len(P) - 1 :].sum().item())
        ntok.append(len(W) - len(P))
        nchar.append(len(answer))
        nbyte.append(len(answer.encode("utf-8")))
        nword.append(len(tagger(answer)))
    total = sum(nll)
    return {
        "ppl_paper": math.exp(sum(n / t for n, t in zip(nll, ntok)) / len(nll)),
        "ppl_token": math.exp(total / sum(ntok)),
        "ppl_char": math.exp(total / sum(nchar)),
        "bits_per_byte": total / sum(nbyte) / math.log(2),
        "ppl_word": math.exp(total / sum(nword)),
        "nll": nll,
    }


@pytest.fixture
def one_thread():
    # Two cores shared by parallel jobs: one torch thread is much faster than two fighting.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cli_run_on_the_zip_matches_hand_computation(tiny_lm, tmp_path):
    zipped = tmp_path / "question_answers.json.zip"
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(FIXTURE, "question_answers.json")
    limit = 10
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "lm_eval",
        "--model", "hf",
        "--model_args", f"pretrained={tiny_lm},dtype=float32",
        "--include_path", str(tasks_dir()),
        "--tasks", "vqa_ppl",
        "--metadata", json.dumps({"vqa_path": str(zipped)}),
        "--limit", str(limit),
        "--device", "cpu",
        "--batch_size", "4",
        "--output_path", str(out),
        "--log_samples",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    res = json.loads(results_file.read_text(encoding="utf-8"))["results"]["vqa_ppl"]

    pairs = _pairs()[:limit]
    want = hand_metrics(tiny_lm, [vqa_prompt(q, "ja") for q, _ in pairs], [a for _, a in pairs])
    for metric in METRICS:
        assert res[f"{metric},none"] == pytest.approx(want[metric], rel=1e-4), metric
    assert res["ppl_paper,none"] != pytest.approx(res["ppl_token,none"], rel=1e-6)  # macro != micro
    assert res["n_over_length,none"] == 0 and res["n_paper_inexact,none"] == 0
    assert "masked by len(tok(prompt))" in res["counting,none"]
    assert str(tiny_lm) in res["counting,none"] and "EOS" in res["counting,none"]
    assert (
        "question_answers.json.zip" in res["data,none"]
        and f"pairs in file {len(_pairs())}" in res["data,none"]
    )

    (samples_file,) = out.rglob("samples_vqa_ppl_*.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text(encoding="utf-8").splitlines()]
    assert [s["doc"]["answer"] for s in samples] == [a for _, a in pairs]
    for s, nll in zip(samples, want["nll"]):
        (a,), (b,) = s["filtered_resps"][0][:1], s["filtered_resps"][1][:1]
        assert float(b) - float(a) == pytest.approx(nll, rel=1e-4)


@pytest.mark.parametrize("backend", ["hf", "hf-fast"])
def test_english_prompt_with_bos_and_truncation(tiny_lm, one_thread, backend):
    """In process, as the Python API: BOS added, a max_length that forces left-truncation; under the
    stock HF model and under jinstruct's hf-fast backend."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    import jinstruct.scoring.hf_fast  # noqa: F401  (registers hf-fast)

    tok = AutoTokenizer.from_pretrained(tiny_lm, add_bos_token=True)
    pairs = _pairs()
    prompts = [vqa_prompt(q, "en") for q, _ in pairs]
    lengths = [len(tok(p + a + tok.eos_token)["input_ids"]) for p, (_, a) in zip(prompts, pairs)]
    max_length = sorted(lengths)[len(lengths) // 3] - 1
    n_over = sum(n - 1 > max_length for n in lengths)
    assert n_over > len(pairs) // 2

    model_args = {
        "pretrained": str(tiny_lm),
        "dtype": "float32",
        "add_bos_token": True,
        "max_length": max_length,
    }
    # The CLI merges --model_args into the task metadata; through the Python API with our own
    # TaskManager, we pass them ourselves.
    manager = TaskManager(
        include_path=str(tasks_dir() / "vqa"),
        include_defaults=False,
        metadata=model_args | {"vqa_path": str(FIXTURE)},
    )
    out = simple_evaluate(
        model=backend, model_args=model_args, tasks=["vqa_ppl_en"], task_manager=manager,
        device="cpu", batch_size=1, log_samples=True, bootstrap_iters=0,
    )  # fmt: skip
    res = out["results"]["vqa_ppl_en"]
    docs = [s["doc"] for s in out["samples"]["vqa_ppl_en"]]
    kept = [d["context"] + d["rest"] for d in docs]
    assert [d["answer"] for d in docs] == [a for _, a in pairs]
    assert sum(k != p for k, p in zip(kept, prompts)) == n_over == res["n_over_length,none"]
    assert res["n_truncated,none"] == n_over and res["n_skipped,none"] == 0
    for k, p in zip(kept, prompts):
        assert p.endswith(k)
    want = hand_metrics(tiny_lm, kept, [a for _, a in pairs], add_bos=True)
    for metric in METRICS:
        assert res[f"{metric},none"] == pytest.approx(want[metric], rel=1e-4), metric
