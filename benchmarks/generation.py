"""Greedy generation under the reference harness's rules: one request at a time (what the reference's
`greedy_until` does) against `hf-fast` (batched by length, per-row stops, the shared few-shot header
run once per group; and with `share_prefix=False`, every prompt in full), and stock lm-eval `hf`
`generate_until` on the same requests, all on one loaded model in one run.

    python benchmarks/generation.py --model tiny --docs 64 --threads 1,2 --repeat 2

Requests are JSQuAD-shaped few-shot prompts (a 3-shot header, then a passage and a question) made from
NLI sentences generated from the demo's phrase lists (or `--data-dir`, a JGLUE checkout whose JNLI
validation sentences are used); `until` is [S, "\\n\\n"] or ["\\n", "。"], where S
is "。" for a trained model and, for random weights, a one-token string the model writes often; `max_gen_toks` varies per
request (as tasks set it per doc in gen_kwargs). The reference loop and hf-fast must give the same
text for every request; stock `hf` follows lm-eval 0.4's own rules (it stops on any `until` string and
skips special tokens), so for it the script reports how many texts agree rather than requiring it.
Throughput is generated tokens (stop token included) per second. "prompt tok" is the context tokens
fed to the model (for hf-fast with a header: each group's header once plus every row's rest), "header
tok" the header tokens run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scoring import data_files, load  # noqa: E402  (the scoring benchmark's models and data)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--labels", default="multi", choices=("multi", "single"))
    p.add_argument("--docs", type=int, default=64)
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--threads", default=None, help="comma-separated (default: 1 and the machine default)")
    p.add_argument("--fast-batch-sizes", default="8,32")
    p.add_argument("--stock-batch-sizes", default="8")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    return p.parse_args(argv)


def frequent_token_text(model, tokenizer, contexts: list[str]) -> str:
    """A one-token string the model often generates greedily here, so that rows stop early."""
    from collections import Counter

    import torch

    counts: Counter = Counter()
    for context in contexts:
        ids = torch.tensor([tokenizer.encode(context, add_special_tokens=False)])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, do_sample=False)
        counts.update(out[0, ids.shape[1] :].tolist())
    for token, _ in counts.most_common():
        text = tokenizer.decode([token])
        if text.strip() and tokenizer.encode(text, add_special_tokens=False)[-1:] == [token]:
            return text
    return "。"


def make_requests(validation: Path, n: int, stop_text: str | None = None):
    from lm_eval.api.instance import Instance

    rows = [json.loads(x) for x in validation.read_text(encoding="utf-8").splitlines() if x.strip()]
    header = "以下は、文脈に基づいて質問に答える例です。\n\n" + "".join(
        f"文脈：{r['sentence1']}\n質問：{r['sentence2']}\n回答：{r['label']}\n\n" for r in rows[:3]
    )
    reqs = []
    for i in range(n):
        r = rows[3 + i % max(1, len(rows) - 3)]
        context = f"{header}文脈：{r['sentence1']}{r['sentence2']}\n質問：{r['sentence2'][:6]}は？\n回答："
        until = [stop_text or "。", "\n\n"] if i % 2 else ["\n", "。"]
        gen_kwargs = {"until": until, "max_gen_toks": 8 + (i * 7) % 57, "do_sample": False}
        reqs.append(Instance("generate_until", {}, (context, gen_kwargs), idx=0, metadata=("bench", i, 1)))
    return reqs


def reference_loop(model, tokenizer, prepared) -> tuple[list[str], int]:
    """The reference's greedy_until: one `generate` call per request."""
    import torch

    from jinstruct.scoring.generation import cut_at_until

    texts, generated = [], 0
    for req in prepared:
        ids = torch.tensor([req.context])
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_length=ids.shape[1] + req.max_new_tokens,
                eos_token_id=req.stop_id,
                pad_token_id=req.stop_id,
                do_sample=False,
            )
        new = out[0].tolist()[ids.shape[1] :]
        generated += len(new)
        texts.append(cut_at_until(tokenizer.decode(new), req.until))
    return texts, generated


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from lm_eval.models.huggingface import HFLM

    from jinstruct.scoring import HFFastLM
    from jinstruct.scoring.generation import reference_request

    default_threads = torch.get_num_threads()
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, default_threads})
    scoring_args = argparse.Namespace(
        data_dir=args.data_dir, validation_file=None, train_file=None, limit=args.docs + 3
    )
    with tempfile.TemporaryDirectory() as tmp:
        validation, train = data_files(scoring_args, Path(tmp))
        path, model, tok = load(args.model, train, "float32", "cpu", args.labels)
        reqs = make_requests(validation, args.docs)
        # Random-weight models never write "。" or "\n"; half the requests stop on a string the model does
        # write, so that per-row stops happen as with a trained model.
        stop_text = frequent_token_text(model, tok, [r.args[0] for r in reqs[:4]])
        reqs = make_requests(validation, args.docs, stop_text)
    probe = HFFastLM(pretrained=model, tokenizer=tok, batch_size=1, tokenization="reference")
    prepared = [
        reference_request(tok, r.args[0], r.args[1]["until"], r.args[1]["max_gen_toks"], probe.max_length)
        for r in reqs
    ]
    print(
        f"model {args.model} ({path}), {len(reqs)} requests, context {min(len(p.context) for p in prepared)}-"
        f"{max(len(p.context) for p in prepared)} tokens, max_gen_toks 8-64 ({sum(p.max_new_tokens for p in prepared)} "
        f"in all), threads {threads}"
    )
    ok = True
    summary = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        best: dict[str, dict] = {}

        def keep(
            name: str, texts, seconds: float, cpu: float, tokens: int, prompt=None, header=None, best=best
        ) -> None:
            if name not in best or seconds < best[name]["seconds"]:
                best[name] = {
                    "texts": texts,
                    "seconds": seconds,
                    "cpu": cpu,
                    "tokens": tokens,
                    "prompt_tokens": prompt,
                    "header_tokens": header,
                }

        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            texts, tokens = reference_loop(model, tok, prepared)
            useful = tokens
            context_tokens = sum(len(p.context) for p in prepared)
            keep(
                "reference loop",
                texts,
                time.perf_counter() - t,
                time.process_time() - c,
                tokens,
                context_tokens,
                0,
            )
            for bs in args.fast_batch_sizes.split(","):
                for share in (True, False):
                    lm = HFFastLM(
                        pretrained=model,
                        tokenizer=tok,
                        batch_size=int(bs),
                        tokenization="reference",
                        share_prefix=share,
                    )
                    t, c = time.perf_counter(), time.process_time()
                    texts = lm.generate_until(reqs, disable_tqdm=True)
                    st = lm.generation_stats
                    keep(
                        f"hf-fast b{bs}" + ("" if share else " full"),
                        texts,
                        time.perf_counter() - t,
                        time.process_time() - c,
                        st.generated_tokens,
                        st.prompt_tokens,
                        st.header_tokens,
                    )
            for bs in args.stock_batch_sizes.split(","):
                lm = HFLM(pretrained=model, tokenizer=tok, batch_size=int(bs))
                t, c = time.perf_counter(), time.process_time()
                texts = lm.generate_until(reqs, disable_tqdm=True)
                # Stock runs every row of a batch to the batch's end; count the useful tokens (the
                # reference rules' count) so that tokens/s compare.
                keep(f"stock hf b{bs}", texts, time.perf_counter() - t, time.process_time() - c, useful)

        base = best["reference loop"]
        print(f"\n== {n_threads} thread(s)")
        stock = min((r for n, r in best.items() if n.startswith("stock")), key=lambda r: r["seconds"])
        print(
            f"{'run':<18}{'prompt tok':>11}{'header tok':>11}{'gen tokens':>11}{'wall s':>8}{'cpu s':>8}"
            f"{'tok/s':>8}{'vs loop':>9}{'(cpu)':>7}{'vs stock':>10}  same texts"
        )
        for name, r in best.items():
            same = sum(a == b for a, b in zip(base["texts"], r["texts"]))
            if name.startswith("hf-fast"):
                ok &= same == len(reqs)
            prompt = "-" if r["prompt_tokens"] is None else f"{r['prompt_tokens']:,}"
            header = "-" if r["header_tokens"] is None else f"{r['header_tokens']:,}"
            print(
                f"{name:<18}{prompt:>11}{header:>11}{r['tokens']:>11,}{r['seconds']:>8.2f}{r['cpu']:>8.2f}"
                f"{r['tokens'] / r['seconds']:>8.0f}{base['seconds'] / r['seconds']:>8.2f}x"
                f"{base['cpu'] / r['cpu']:>6.2f}x{stock['seconds'] / r['seconds']:>9.2f}x  {same}/{len(reqs)}"
            )

        def fastest(full: bool, best=best) -> dict:
            runs = [r for n, r in best.items() if n.startswith("hf-fast") and n.endswith(" full") == full]
            return min(runs, key=lambda r: r["seconds"])

        fast, full = fastest(False), fastest(True)
        print(
            f"RATIO hf-fast vs reference loop: {base['seconds'] / fast['seconds']:.2f}x wall "
            f"({base['cpu'] / fast['cpu']:.2f}x cpu); vs stock hf: {stock['seconds'] / fast['seconds']:.2f}x wall "
            f"(stock runs lm-eval's rules; same texts {sum(a == b for a, b in zip(fast['texts'], stock['texts']))}/{len(reqs)}); "
            f"shared header vs full prompts: {full['seconds'] / fast['seconds']:.2f}x wall, prompt tokens "
            f"{fast['prompt_tokens']:,} vs {full['prompt_tokens']:,}"
        )
        summary.append(
            {
                "threads": n_threads,
                **{n: {k: v for k, v in r.items() if k != "texts"} for n, r in best.items()},
            }
        )
    print("hf-fast texts identical to the reference loop: " + ("yes" if ok else "NO"))
    if args.json:
        args.json.write_text(json.dumps({"requests": len(reqs), "per_threads": summary}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
