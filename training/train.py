"""LoRA instruction tuning: the whole recipe, top to bottom.

    jinstruct train --preset stormy --output runs/stormy
    accelerate launch --config_file training/configs/accelerate_zero2.yaml -m jinstruct.training.train \
        --preset stormy --output runs/stormy

From Python: `train(TrainConfig(...)) -> Path` (the adapter folder). Every knob is in config.py; the
Accelerate/DeepSpeed plumbing is in distributed.py.

`Recipe`: setup (base model + LoRA -> data (validated, split, tokenized, cached) -> optimizer and
schedule -> optional resume) -> train_step per optimizer step (micro batches from batching.choose_plan,
token-sum loss over the whole step, NaN guard, clipping), with eval and atomic checkpoints at
intervals -> save (PEFT adapter + resolved config (+ merged model)).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jinstruct.training import checkpoint, distributed
from jinstruct.training.batching import (
    CostModel,
    choose_plan,
    collate,
    model_inputs,
    packing_unsupported,
    token_loss_sum,
)
from jinstruct.training.config import TrainConfig, config_from_args
from jinstruct.training.data import DataError, TokenizedSet, check_source, prepare_data
from jinstruct.training.lora import add_lora
from jinstruct.training.metrics import MetricsLog

# Fields that change the data order or the arithmetic: a checkpoint only resumes a run that agrees on them.
RESUME_MUST_MATCH = (
    "model",
    "data",
    "data_revision",
    "language",
    "seq_len",
    "loss_on",
    "val_size",
    "split_seed",
    "max_rows",
    "drop_translation",
    "batching",
    "global_batch_size",
    "epochs",
    "max_steps",
    "lr",
    "warmup_steps",
    "weight_decay",
    "seed",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "lora_target_modules",
)


# Written into every output folder we train into: what makes a non-empty folder "a previous run of ours".
RUN_MARKER = ".jinstruct-run"
MODEL_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "model-00001-of-*.safetensors",
    "pytorch_model-00001-of-*.bin",
)


class NonFiniteLossError(RuntimeError):
    pass


def is_previous_run(folder: Path) -> bool:
    """A folder this trainer wrote: our marker, or (before the marker existed) a checkpoint or our config."""
    if (folder / RUN_MARKER).is_file() or checkpoint.list_checkpoints(folder):
        return True
    try:
        saved = json.loads((folder / "training_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and isinstance(saved.get("run"), dict) and "lora_r" in saved


def check_output(config: TrainConfig) -> None:
    """Never write into a model's folder (an adapter_config.json there makes transformers attach the
    adapter whenever that folder is loaded as a base), nor clobber a folder that is not one of our runs."""
    output = Path(config.output)
    base = Path(config.model).expanduser()
    if base.exists() and output.exists() and output.resolve() == base.resolve():
        raise ValueError(
            f"--output {output} is the base model's own folder; an adapter written there would be "
            "attached whenever that folder is loaded as the base. Pick a new --output folder."
        )
    if not output.exists():
        return
    if not output.is_dir():
        raise ValueError(
            f"--output {output} is a file; give a folder (new or a previous run of this trainer)"
        )
    weights = [p.name for pattern in MODEL_WEIGHTS for p in output.glob(pattern)]
    if (output / "config.json").is_file() and weights:
        raise ValueError(
            f"--output {output} holds a model ({weights[0]}, config.json); writing an adapter "
            "beside it would change what that folder loads as. Pick a new --output folder."
        )
    entries = sorted(p.name for p in output.iterdir())
    if entries and not is_previous_run(output) and not config.overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(
            f"--output {output} is not empty ({shown}) and is not a previous run of jinstruct train; "
            "pick a new or empty folder, or pass --overwrite to write into it (files of the same "
            "names are replaced)"
        )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config = config_from_args(argv)
        train(config)
    except (DataError, NonFiniteLossError, OSError, ValueError) as e:  # OSError: model or file not found
        print(f"jinstruct train: error: {e}", file=sys.stderr)
        return 1
    return 0


def train(config: TrainConfig) -> Path:
    """Run the recipe; returns the output folder (a PEFT adapter once the run is complete)."""
    config.validate()
    check_source(config.data)
    check_output(config)
    if config.resume and (found := checkpoint.newest_checkpoint(Path(config.output))) is not None:
        _check_same_run(checkpoint.read_state(found)["config"], config, found)  # before anything is loaded
    with distributed.accelerator_for(config) as (accelerator, ds_config):
        return Recipe(config, accelerator, ds_config).run()


class Recipe:
    """setup (model, data, optimizer, resume) -> train_step per optimizer step, with eval, logging and
    checkpoints at intervals -> save (adapter, resolved config, merged model)."""

    def __init__(self, config: TrainConfig, accelerator, ds_config: dict | None):
        self.config, self.accelerator, self.ds_config = config, accelerator, ds_config
        self.deepspeed = ds_config is not None
        self.output = Path(config.output)
        self.say = accelerator.print
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        self.counters = {"examples": 0, "tokens": 0, "positions": 0, "train_seconds": 0.0}
        self.start_step, self.val_loss = 0, None

    def run(self) -> Path:
        self.setup()
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=self.total_steps,
            initial=self.start_step,
            unit="step",
            dynamic_ncols=True,
            disable=not (self.config.progress and self.accelerator.is_main_process),
        )
        self.started = time.perf_counter()
        for step in range(self.start_step, self.total_steps):
            record = self.train_step(step)
            self.evaluate_and_log(record)
            done = record["step"]
            stopping = done == self.config.stop_at_step and done < self.total_steps  # a resume runs on
            if done % self.config.save_every == 0 or done == self.total_steps or stopping:
                self.save_checkpoint(done)
            if stopping:
                self.bar.close()
                self.say(
                    f"stopped after step {done} of {self.total_steps} (--stop-at-step); continue with --resume"
                )
                return self.output
        self.bar.close()
        self.save()
        return self.output

    # ---- setup

    def setup(self) -> None:
        from accelerate.utils import set_seed

        self.output.mkdir(parents=True, exist_ok=True)
        if self.accelerator.is_main_process:
            (self.output / RUN_MARKER).write_text(
                json.dumps({"written_by": "jinstruct train"}) + "\n", encoding="utf-8"
            )
        set_seed(self.config.seed)
        self.setup_model()
        self.setup_data()
        self.setup_optimizer()
        self.resume()

    def setup_model(self) -> None:
        """Base model and tokenizer, LoRA on top."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        config = self.config
        self.precision = self.accelerator.mixed_precision  # "no", "bf16", "fp16"
        self.base_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision, torch.float32)
        if config.base_fp32:
            self.base_dtype = torch.float32
        self.attn = (
            config.attn_implementation or _default_attention()
        )  # None: transformers picks per architecture
        self.tokenizer = AutoTokenizer.from_pretrained(
            config.model, revision=config.model_revision, trust_remote_code=config.trust_remote_code
        )
        self.pad_id = next(
            t
            for t in (self.tokenizer.pad_token_id, self.tokenizer.unk_token_id, self.tokenizer.eos_token_id)
            if t is not None
        )
        model = AutoModelForCausalLM.from_pretrained(
            config.model,
            dtype=self.base_dtype,
            attn_implementation=self.attn,
            revision=config.model_revision,
            trust_remote_code=config.trust_remote_code,
        )
        self.attn = (
            model.config._attn_implementation
        )  # e.g. eager for Gemma 2, whose logit soft-capping sdpa lacks
        model.config.use_cache = False
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.batching = config.batching
        cannot_pack = packing_unsupported(model)
        if cannot_pack and self.batching == "pack":
            raise ValueError(
                f"batching=pack cannot keep packed examples apart on this model: {cannot_pack}; "
                "use --batching group (or auto)"
            )
        if cannot_pack and self.batching == "auto":
            self.batching = "group"
            self.say(f"batching: group (one example per row), since {cannot_pack}")
        self.model, self.lora_targets = add_lora(model, config)
        self.n_trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.say(
            f"model {config.model} ({self.model.config.model_type}, {self.base_dtype}, attention {self.attn}); "
            f"LoRA r={config.lora_r} alpha={config.lora_alpha} on {self.lora_targets}: "
            f"{self.n_trainable:,} trainable parameters"
        )

    def setup_data(self) -> None:
        """Rows validated, split and tokenized; the main process tokenizes and caches, the others read the cache."""
        config, say = self.config, self.say
        with self.accelerator.main_process_first():
            self.data = prepare_data(
                config,
                self.tokenizer,
                cache_dir=self.output / "cache",
                progress=config.progress and self.accelerator.is_main_process,
            )
        for line in self.data.report.lines():
            say(line)
        say(
            "loss on: "
            + (
                "the response tokens only (prompt masked; the paper used the whole sequence: --loss-on all)"
                if config.loss_on == "response"
                else "the whole sequence, prompt included (as the paper)"
            )
        )
        n = len(self.data.train)
        self.lengths, self.targets_per_example = self.data.train.lengths, self.data.train.target_tokens()
        self.steps_per_epoch = math.ceil(n / config.global_batch_size)
        self.total_steps = config.max_steps or math.ceil(config.epochs * self.steps_per_epoch)
        say(
            f"{n} training examples, global batch {config.global_batch_size} examples "
            f"({self.world} process(es), up to {config.micro_batch_size} rows of <= {config.seq_len} tokens per "
            f"micro batch, batching={config.batching}); {self.steps_per_epoch} steps/epoch, {self.total_steps} "
            f"steps; precision {self.precision}"
        )

    def setup_optimizer(self) -> None:
        """AdamW, linear warm-up then linear decay to 0; model and optimizer prepared by accelerate."""
        from transformers import get_linear_schedule_with_warmup

        config = self.config
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = distributed.make_optimizer(self.params, config, self.ds_config)
        self.scheduler = get_linear_schedule_with_warmup(
            optimizer, min(config.warmup_steps, self.total_steps), self.total_steps
        )
        self.model, self.optimizer = distributed.prepare(
            self.accelerator, self.model, optimizer, config, self.ds_config
        )
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.compute_dtype = unwrapped.get_input_embeddings().weight.dtype  # DeepSpeed may cast
        self.cost = CostModel.from_config(unwrapped.config)
        self.flatten = self.attn.startswith("flash")  # varlen: the micro batch becomes one row

    def resume(self) -> None:
        """Continue from the newest complete checkpoint (with --resume); drop what a killed run left after it."""
        accelerator = self.accelerator
        self.metrics = MetricsLog(self.output / "metrics.jsonl", enabled=accelerator.is_main_process)
        if accelerator.is_main_process:
            for stale in checkpoint.remove_partial(self.output):
                self.say(f"removed unfinished checkpoint {stale} (from an interrupted save)")
        accelerator.wait_for_everyone()
        if self.config.resume:
            found = checkpoint.newest_checkpoint(self.output)
            if found is None:
                self.say(
                    f"--resume: no complete checkpoint in {checkpoint.checkpoint_dir(self.output)}; "
                    "starting from step 0"
                )
            else:
                _check_same_run(checkpoint.read_state(found)["config"], self.config, found)
                state = checkpoint.load(accelerator, self.model, self.optimizer, self.scheduler, found)
                self.start_step, self.counters = state["step"], state["counters"]
                self.say(f"resumed from {found} at step {self.start_step}")
        self.metrics.truncate_after(self.start_step)

    # ---- one optimizer step

    def step_examples(self, step: int) -> np.ndarray:
        """The examples of optimizer step `step`: a fresh permutation per epoch, seeded by (seed, epoch)."""
        epoch, k = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.config.seed, epoch]).permutation(len(self.data.train))
        return perm[k * self.config.global_batch_size : (k + 1) * self.config.global_batch_size]

    def train_step(self, step: int) -> dict[str, Any]:
        """Micro batches of this process, token-sum loss over the whole step, NaN guard, optimizer and
        schedule step; returns the step's log record."""
        config, accelerator, model, train = self.config, self.accelerator, self.model, self.data.train
        t0 = time.perf_counter()
        ids = self.step_examples(step)
        mode, plan = choose_plan(
            ids,
            self.lengths,
            self.batching,
            config.micro_batch_size,
            config.seq_len,
            self.world,
            self.cost,
            varlen=self.flatten,
        )
        n_target = int(self.targets_per_example[ids].sum())  # over every process: the loss denominator
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, positions, real tokens (this process)
        micros = plan[self.rank]
        for m, micro in enumerate(micros):
            batch = collate(
                micro, train, self.pad_id, mode, config.pad_to_multiple_of, config.padding_side, self.flatten
            )
            last = m == len(micros) - 1
            with distributed.micro_step(accelerator, model, sync=last, deepspeed=self.deepspeed):
                inputs = model_inputs(batch, accelerator.device, self.attn, self.compute_dtype)
                logits = model(**inputs, use_cache=False).logits
                loss_sum = token_loss_sum(logits, batch.tensors["labels"].to(accelerator.device))
                totals += torch.tensor(
                    [loss_sum.item(), batch.positions, batch.real_tokens], dtype=torch.float64
                )
                if last:  # before the optimizer can step: stop on NaN/inf, on every process alike
                    totals = distributed.sum_over_processes(accelerator, totals)
                    self._check_finite(totals[0].item(), n_target, step)
                # Sum over the step / the step's target tokens; processes' gradients are averaged, so x world.
                accelerator.backward(loss_sum * (self.world / max(n_target, 1)))
        grad_norm = distributed.optimizer_step(
            accelerator, self.optimizer, self.params, config.max_grad_norm, self.deepspeed
        )
        self.scheduler.step()

        seconds = time.perf_counter() - t0
        counters = self.counters
        counters["examples"] += len(ids)
        counters["tokens"] += int(totals[2])
        counters["positions"] += int(totals[1])
        counters["train_seconds"] += seconds
        done = step + 1
        return {
            "step": done,
            "epoch": round(done / self.steps_per_epoch, 4),
            "loss": totals[0].item() / max(n_target, 1),
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_s": totals[2].item() / seconds,
            "padded_fraction": 1 - totals[2].item() / totals[1].item(),
            "examples": counters["examples"],
            "tokens": counters["tokens"],
            "batching": mode,
        }

    def _check_finite(self, loss_sum: float, n_target: int, step: int) -> None:
        if not math.isfinite(loss_sum):
            raise NonFiniteLossError(
                f"loss is {loss_sum / max(n_target, 1)} at step {step + 1} (epoch "
                f"{step // self.steps_per_epoch + 1}); nothing of this step was applied. Lower --lr, "
                "use --precision bf16/fp32, or resume from the last checkpoint with --resume."
            )

    # ---- between steps: eval, log, checkpoint

    def evaluate_and_log(self, record: dict[str, Any]) -> None:
        config, done = self.config, record["step"]
        if self.data.val is not None and (done % config.eval_every == 0 or done == self.total_steps):
            self.val_loss = evaluate(
                self.model,
                self.data.val,
                self.accelerator,
                config,
                self.pad_id,
                self.attn,
                self.compute_dtype,
                self.cost,
                self.batching,
            )
            record["val_loss"] = self.val_loss
        if done % config.log_every == 0 or "val_loss" in record or done == self.total_steps:
            self.metrics.write(record)
            if config.report_to != "none":
                self.accelerator.log(record, step=done)
        self.bar.set_postfix(
            loss=f"{record['loss']:.4f}",
            lr=f"{record['lr']:.2e}",
            tok_s=f"{record['tokens_per_s']:,.0f}",
            **({"val": f"{self.val_loss:.4f}"} if "val_loss" in record else {}),
        )
        self.bar.update(1)

    def save_checkpoint(self, done: int) -> None:
        state = {"step": done, "counters": self.counters, "config": self.config.to_dict()}
        saved = checkpoint.save(
            self.accelerator,
            self.model,
            self.optimizer,
            self.scheduler,
            self.output,
            done,
            state,
            self.config.keep_checkpoints,
        )
        if self.accelerator.is_main_process:
            self.bar.write(f"checkpoint {saved}")

    # ---- the adapter (+ resolved config, + merged model)

    def save(self) -> None:
        config, counters = self.config, self.counters
        padded = 1 - counters["tokens"] / max(counters["positions"], 1)
        summary = {
            "steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.world,
            "precision": self.precision,
            "base_dtype": str(self.base_dtype).replace("torch.", ""),
            "attention": self.attn,
            "batching": self.batching,
            "deepspeed": self.ds_config,
            "lora_target_modules": self.lora_targets,
            "trainable_parameters": self.n_trainable,
            "examples_seen": counters["examples"],
            "tokens_seen": counters["tokens"],
            "padded_fraction": padded,
            "train_seconds": counters["train_seconds"],
            "wall_seconds_this_invocation": time.perf_counter() - self.started,
            "final_val_loss": self.val_loss,
            "data": asdict(self.data.report),
            "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30)
            if torch.cuda.is_available()
            else None,
            "loss_on_note": (
                "response tokens only"
                if config.loss_on == "response"
                else "whole sequence, prompt included (paper)"
            ),
        }
        save_adapter(self.model, self.tokenizer, self.accelerator, self.output, config, summary)
        if config.merge:
            save_merged(config, self.output, self.accelerator, self.base_dtype)
        self.say(f"padded fraction {padded:.1%}; adapter written to {self.output}")


# ---------------------------------------------------------------- pieces of the recipe


@torch.no_grad()
def evaluate(
    model,
    val: TokenizedSet,
    accelerator,
    config: TrainConfig,
    pad_id: int,
    attn: str,
    dtype: torch.dtype,
    cost: CostModel | None = None,
    batching: str | None = None,
) -> float:
    """Token-weighted mean loss over the whole validation set (same masking as training)."""
    model.eval()
    ids = np.arange(len(val))
    mode, plan = choose_plan(
        ids,
        val.lengths,
        batching or config.batching,
        config.micro_batch_size,
        config.seq_len,
        accelerator.num_processes,
        cost,
        varlen=attn.startswith("flash"),
    )
    total = torch.zeros(1, dtype=torch.float64)
    for micro in plan[accelerator.process_index]:
        batch = collate(
            micro,
            val,
            pad_id,
            mode,
            config.pad_to_multiple_of,
            config.padding_side,
            flatten=attn.startswith("flash"),
        )
        logits = model(**model_inputs(batch, accelerator.device, attn, dtype), use_cache=False).logits
        total += token_loss_sum(logits, batch.tensors["labels"].to(accelerator.device)).item()
    total = distributed.sum_over_processes(accelerator, total)
    model.train()
    return total.item() / max(int(val.target_tokens().sum()), 1)


def save_adapter(model, tokenizer, accelerator, output: Path, config: TrainConfig, summary: dict) -> None:
    """adapter_config.json + adapter_model.safetensors + tokenizer + training_config.json."""
    state = distributed.full_state_dict(accelerator, model)
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(output, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(output)
        resolved = {**config.to_dict(), "run": summary}
        # `seq_len` sits at the top level: the leaderboard reads it to flag examples longer than training saw.
        (output / "training_config.json").write_text(
            json.dumps(resolved, indent=1, ensure_ascii=False, default=str), encoding="utf-8"
        )
    accelerator.wait_for_everyone()


def save_merged(config: TrainConfig, output: Path, accelerator, dtype: torch.dtype) -> None:
    if accelerator.is_main_process:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(
            config.model,
            dtype=dtype,
            revision=config.model_revision,
            trust_remote_code=config.trust_remote_code,
        )
        merged = PeftModel.from_pretrained(base, str(output)).merge_and_unload()
        merged.save_pretrained(output / "merged", safe_serialization=True)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(output).save_pretrained(output / "merged")
        accelerator.print(f"merged model written to {output / 'merged'}")
    accelerator.wait_for_everyone()


def _default_attention() -> str | None:
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return None  # transformers' choice: sdpa where the architecture supports it, else eager


def _check_same_run(saved: dict, config: TrainConfig, folder: Path) -> None:
    current = config.to_dict()
    differ = [k for k in RESUME_MUST_MATCH if saved.get(k) != current.get(k)]
    if differ:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differ)
        raise ValueError(
            f"cannot resume from {folder}: the run differs in {details}. Use the original settings, "
            "or a new --output folder for a new run."
        )


if __name__ == "__main__":
    raise SystemExit(main())
