"""`hf-fast`: lm-eval's HF model, with each few-shot context run once.

Stock `--model hf` runs one full forward pass per (context, choice) and computes the output head at
every position. Here each distinct context runs once per batch, its choices are scored from its
key/value cache, a prompt header common to many docs runs once per group, and the head is computed
only where a token is scored. Numbers equal the stock model's (float rounding aside). Under
`tokenization=reference`, `generate_until` applies the reference harness's greedy rules to batches,
sharing a few-shot header the same way (`jinstruct.scoring.generation`). Everything else (rolling
loglikelihood, generation under the default tokenization, model loading, data parallelism) is HFLM's
own code.

Extra model args (besides all of HFLM's):
- `tokenization=lm_eval|reference`: lm-eval 0.4's pair encoding (default) or the reference harness's
  (see `jinstruct.scoring.tokenization`).
- `share_prefix=True`, `min_shared_prefix=16`: share a common prompt header across docs (scoring and
  reference-rule generation).
- `layout=auto|packed|cache`: how choices share their context (see `kv_scoring`); auto packs all
  choices of a context into one row where the attention takes a custom mask, else uses the cache.
- `chunk_tokens=auto`: under SDPA the packed rows' attention runs in query chunks of this many tokens
  (0: whole), so the explicit mask's upper triangle is mostly skipped; auto: 128 (see
  `chunked_attention`).
- `fast=True`: False runs HFLM's own loglikelihood code (for A/B checks).
`batch_size` counts distinct contexts per forward pass; all choices of a context join its batch.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from torch.profiler import record_function
from tqdm import tqdm

from jinstruct.fields import parse_bool

from .generation import GenerationStats, generate_reference, reference_request
from .kv_scoring import LAYOUTS, SharedContextScorer, unsupported_reason
from .plan import batches, minimum_tokens, plan_groups, split_request
from .tokenization import check_mode, encode_pair

# A child of lm-eval's logger: our messages follow its --verbosity and format.
eval_logger = logging.getLogger("lm_eval.models.hf_fast")


def _as_bool(value, name: str) -> bool:
    parsed = value if isinstance(value, bool) else parse_bool(str(value))
    if parsed is None:
        raise ValueError(f"hf-fast: {name}={value!r} is not a boolean; use {name}=True or {name}=False")
    return parsed


@dataclass
class ScoringStats:
    """What the shared-context path did, summed over every loglikelihood call of this model."""

    requests: int = 0
    contexts: int = 0
    groups: int = 0
    header_tokens: int = 0
    forward_tokens: int = 0  # real tokens fed to the model
    forward_positions: int = 0  # including padding
    head_positions: int = 0
    minimum_tokens: int = 0  # each distinct context once + each distinct continuation start (plan.py)
    seconds: float = 0.0

    @property
    def padding_fraction(self) -> float:
        return 0.0 if not self.forward_positions else 1.0 - self.forward_tokens / self.forward_positions

    def as_dict(self) -> dict:
        return {**asdict(self), "padding_fraction": self.padding_fraction}


def _cpu_processes_join_one_group() -> None:
    """Under a multi-process launcher (`accelerate launch --multi_gpu`, torchrun) without a GPU, make the
    Accelerator that HFLM creates join the launcher's processes (gloo) instead of running each alone."""
    import torch

    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")


@register_model("hf-fast")
class HFFastLM(HFLM):
    def __init__(
        self,
        pretrained,
        tokenization: str = "lm_eval",
        share_prefix: bool = True,
        min_shared_prefix: int = 16,
        fast: bool = True,
        layout: str = "auto",
        chunk_tokens: int | str = "auto",
        **kwargs,
    ) -> None:
        _cpu_processes_join_one_group()
        super().__init__(pretrained, **kwargs)
        self._data_parallel_on_cpu()
        self.tokenization = check_mode(tokenization)
        self.share_prefix = _as_bool(share_prefix, "share_prefix")
        self.min_shared_prefix = int(min_shared_prefix)
        if self.min_shared_prefix < 1:
            raise ValueError(f"hf-fast: min_shared_prefix={min_shared_prefix} must be at least 1")
        self.fast = _as_bool(fast, "fast")
        if layout not in LAYOUTS:
            raise ValueError(f"hf-fast: layout={layout!r} is not known; use one of {', '.join(LAYOUTS)}")
        self.layout = layout
        text = str(chunk_tokens).strip().lower()
        if text != "auto" and not text.isdigit():
            raise ValueError(
                f"hf-fast: chunk_tokens={chunk_tokens!r} must be auto, 0 (no chunks) or a positive integer"
            )
        self.chunk_tokens = text if text == "auto" else int(text)
        self.scoring_stats = ScoringStats()
        self._scorer: SharedContextScorer | None = None
        self._fallback_reason: str | None = None
        self._fallback_said = False
        self._stock_only = False  # set while a parent method (rolling) must run HFLM's own code
        self.generation_stats = GenerationStats()
        self._generation_fallback_said = False
        self._encode_memo: dict[str, list[int]] | None = None

    def _data_parallel_on_cpu(self) -> None:
        # HFLM splits the documents over `accelerate launch` processes only when there are several GPUs;
        # on CPU every process would score everything and write its own results as rank 0. Processes
        # (gloo) work the same way: each scores its share, lm-eval gathers them on rank 0.
        accelerator = getattr(self, "accelerator", None)
        if accelerator is None or accelerator.num_processes <= 1 or self._world_size > 1:
            return
        if accelerator.device.type != "cpu":
            return
        self._rank = accelerator.process_index
        self._world_size = accelerator.num_processes
        eval_logger.info("hf-fast: data-parallel on CPU, process %d of %d", self._rank, self._world_size)

    # -- tokenization ---------------------------------------------------------------------------------
    def tok_encode(self, string: str, add_special_tokens=None, left_truncate_len=None, **kwargs) -> list[int]:
        memo = self._encode_memo
        if memo is None or add_special_tokens is not None or left_truncate_len or kwargs:
            return super().tok_encode(
                string, add_special_tokens=add_special_tokens, left_truncate_len=left_truncate_len, **kwargs
            )
        found = memo.get(string)
        if found is None:
            found = memo[string] = super().tok_encode(string)
        return list(found)

    def _encode_all(self, pairs) -> dict[str, list[int]]:
        """Every string lm-eval's pair encoding will ask `tok_encode` for, encoded in one batch call
        (a fast tokenizer runs it on all cores). Strings are grouped by the special-token setting
        `tok_encode` would use; each group's first string is checked against `tok_encode` itself, and a
        group that differs (another lm-eval's rules, a slow tokenizer) is left to be encoded one by one."""
        from lm_eval.models.utils import _add_special_kwargs, has_bos_prefix

        if not getattr(self.tokenizer, "is_fast", False):
            return {}
        strings: set[str] = set()
        for context, continuation in pairs:
            if not context:  # lm-eval encodes the continuation alone, with explicit special-token settings
                continue
            n_spaces = len(context) - len(context.rstrip())  # moved to the continuation, as lm-eval does
            if n_spaces:
                context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
            strings.update((context, context + continuation))
        bos = self.tokenizer.decode(self.prefix_token_id)
        groups: dict[tuple, list[str]] = {}
        for string in sorted(strings):
            kwargs = _add_special_kwargs(None, self.add_bos_token)
            if has_bos_prefix(string, bos):
                kwargs["add_special_tokens"] = False
            groups.setdefault(tuple(sorted(kwargs.items())), []).append(string)
        memo: dict[str, list[int]] = {}
        for kwargs, group in groups.items():
            encoded = self.tokenizer(group, **dict(kwargs))["input_ids"]
            if encoded[0] == super().tok_encode(group[0]):
                memo.update(zip(group, encoded))
        return memo

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        if self.tokenization == "lm_eval":
            # lm-eval's _encode_pair encodes a doc's context once per choice; within this call each
            # distinct string is encoded once (the tokenizer is deterministic), all in one batch call.
            self._encode_memo = self._encode_all([req.args for req in requests])
            try:
                return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
            finally:
                self._encode_memo = None
        if self.enable_thinking:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)  # raises HFLM's error
        new_reqs = []
        for context, continuation in [req.args for req in requests]:
            context_enc, continuation_enc = encode_pair(
                self.tokenizer, context, continuation, mode="reference"
            )
            new_reqs.append(((context, continuation), context_enc, continuation_enc))
        return self._loglikelihood_tokens(new_reqs, disable_tqdm=disable_tqdm)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        # Rolling windows share no context; keep HFLM's behaviour exactly.
        self._stock_only = True
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self._stock_only = False

    # -- generation -------------------------------------------------------------------------------------
    def generate_until(self, requests, disable_tqdm: bool = False):
        """Default tokenization: HFLM's own generate_until. Reference: its greedy rules, batched, with a
        few-shot header shared by many contexts run once per group (`share_prefix`, `min_shared_prefix`)
        and its key/value cache copied into each batch; see `jinstruct.scoring.generation`."""
        if self.tokenization != "reference":
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        prepared = []
        for req in requests:
            context, gen_kwargs = req.args
            gen_kwargs = dict(gen_kwargs or {})
            if gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature") or 0.0) > 0.0:
                raise ValueError(
                    "hf-fast: tokenization=reference decodes greedily as the reference harness does; "
                    f"this request asks for sampling ({gen_kwargs}); drop do_sample/temperature or use "
                    "tokenization=lm_eval"
                )
            max_gen_toks = int(gen_kwargs.get("max_gen_toks", self.max_gen_toks))
            prepared.append(
                reference_request(
                    self.tokenizer, context, gen_kwargs.get("until"), max_gen_toks, self.max_length
                )
            )
        per_batch = self.batch_size if self.batch_size != "auto" else 16
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        pbar = tqdm(
            total=len(requests),
            disable=(disable_tqdm or (self.rank != 0)),
            desc="Running generate_until requests (hf-fast, reference rules)",
        )

        def done(i: int, text: str) -> None:
            self.cache_hook.add_partial("generate_until", requests[i].args, text)
            pbar.update(1)

        # Left padding, explicit positions and a copied header cache are exact only where the scoring
        # path's shared cache is; anything else runs the reference's own one-request generate.
        reason = unsupported_reason(self.model, self.backend)
        if reason is not None and not self._generation_fallback_said:
            eval_logger.warning("hf-fast: generating one request at a time (no batching): %s", reason)
            self._generation_fallback_said = True
        st = self.generation_stats
        before = (st.context_tokens, st.prompt_tokens, st.header_tokens, st.groups)
        texts = generate_reference(
            self.model,
            self.tokenizer,
            prepared,
            int(per_batch),
            pad,
            self.device,
            st,
            done,
            batched=reason is None,
            share_prefix=self.share_prefix,
            min_shared=self.min_shared_prefix,
        )
        pbar.close()
        eval_logger.info(
            "hf-fast: %d generation requests; fed %d of %d prompt tokens (%d header tokens in %d groups)",
            len(requests),
            st.prompt_tokens - before[1],
            st.context_tokens - before[0],
            st.header_tokens - before[2],
            st.groups - before[3],
        )
        return texts

    # -- scoring ----------------------------------------------------------------------------------------
    def _fast_path(self) -> SharedContextScorer | None:
        if not self.fast or self._stock_only:
            return None
        if self._scorer is None and self._fallback_reason is None:
            self._fallback_reason = unsupported_reason(self.model, self.backend)
            if self._fallback_reason is None:
                self._scorer = SharedContextScorer(
                    self.model,
                    device=self.device,
                    pad_token_id=self.tokenizer.pad_token_id
                    if self.tokenizer.pad_token_id is not None
                    else 0,
                    softmax_dtype=self.softmax_dtype,
                    autocast_dtype=self.mixed_precision_dtype,
                    layout=self.layout,
                    chunk_tokens=self.chunk_tokens,
                )
        if self._fallback_reason is not None and not self._fallback_said:
            eval_logger.warning(
                "hf-fast: falling back to the stock HF scoring path (one forward pass per request): %s",
                self._fallback_reason,
            )
            self._fallback_said = True
        return self._scorer

    def _contexts_per_batch(self, requests) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        # HFLM's probe runs full-logit forwards of the longest request: a safe bound for our passes.
        longest = max(requests, key=lambda r: len(r[1]) + len(r[2]))
        size = self._detect_batch_size([longest], 0)
        eval_logger.info("hf-fast: batch_size=auto -> %d contexts per batch", size)
        return size

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        scorer = self._fast_path()
        if scorer is None:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        if not requests:
            return []
        started = time.perf_counter()
        with record_function("hf_fast.plan"):
            split = [split_request(ctx, cont, self.max_length) for _, ctx, cont in requests]
            truncated = sum(len(ctx) + len(cont) > self.max_length + 1 for _, ctx, cont in requests)
            if truncated:
                eval_logger.warning(
                    "hf-fast: %d requests are longer than max_length=%d + 1 tokens and were truncated from the left",
                    truncated,
                    self.max_length,
                )
            groups = plan_groups(
                split, share_prefix=self.share_prefix, min_shared=self.min_shared_prefix, window=scorer.window
            )
        per_batch = override_bs or self._contexts_per_batch(requests)
        before = (scorer.stats.tokens, scorer.stats.positions, scorer.stats.head_positions)

        results: list[tuple[float, bool] | None] = [None] * len(requests)
        pbar = tqdm(
            total=len(requests),
            disable=(disable_tqdm or (self.rank != 0)),
            desc="Running loglikelihood requests (hf-fast)",
        )
        for group in groups:
            with record_function("hf_fast.header"):
                header_cache = scorer.run_header(group.header) if group.header_len else None
            for batch in batches(group, per_batch):
                for row, ll, greedy in scorer.score_batch(batch, split, group.header_len, header_cache):
                    answer = (ll, greedy)
                    results[row] = answer
                    self.cache_hook.add_partial("loglikelihood", requests[row][0], answer)
                pbar.update(sum(len(c.rows) for c in batch))
            del header_cache
        pbar.close()

        st = self.scoring_stats
        st.requests += len(requests)
        st.contexts += sum(len(g.contexts) for g in groups)
        st.groups += len(groups)
        st.header_tokens += sum(g.header_len for g in groups)
        st.forward_tokens += scorer.stats.tokens - before[0]
        st.forward_positions += scorer.stats.positions - before[1]
        st.head_positions += scorer.stats.head_positions - before[2]
        st.minimum_tokens += minimum_tokens(split)
        st.seconds += time.perf_counter() - started
        eval_logger.info(
            "hf-fast: %d requests, %d distinct contexts in %d groups; fed %d tokens (minimum %d), "
            "padding %.1f%% of %d positions; head at %d positions",
            st.requests,
            st.contexts,
            st.groups,
            st.forward_tokens,
            st.minimum_tokens,
            100 * st.padding_fraction,
            st.forward_positions,
            st.head_positions,
        )
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:  # a planning bug must never hand lm-eval a silently shorter list
            raise RuntimeError(f"hf-fast: {len(missing)} requests were not scored (first: {missing[0]})")
        return results


__all__ = ["HFFastLM", "ScoringStats"]
