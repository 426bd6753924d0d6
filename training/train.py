"""LoRA instruction tuning: the whole recipe, top to bottom.

    jinstruct train --preset stormy --output runs/stormy
    accelerate launch --config_file training/configs/accelerate_zero2.yaml -m jinstruct.training.train \
        --preset stormy --output runs/stormy

From Python: `train(TrainConfig(...)) -> Path` (the adapter folder). Every knob is in config.py.

Steps: accelerator -> base model + LoRA -> data (validated, split, tokenized, cached) -> optimizer and
schedule -> optional resume -> loop over optimizer steps (micro batches from batching.choose_plan,
token-sum loss over the whole step, NaN guard, clipping, eval and atomic checkpoints at intervals)
-> PEFT adapter + resolved config (+ merged model).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from jinstruct.training import checkpoint
from jinstruct.training.batching import (
    CostModel,
    choose_plan,
    collate,
    model_inputs,
    packing_unsupported,
    token_loss_sum,
)
from jinstruct.training.config import TrainConfig, config_from_args, deepspeed_config_path
from jinstruct.training.data import DataError, TokenizedSet, check_source, prepare_data
from jinstruct.training.lora import add_lora
from jinstruct.training.metrics import MetricsLog

# Fields that change the data order or the arithmetic: a checkpoint only resumes a run that agrees on them.
RESUME_MUST_MATCH = ("model", "data", "data_revision", "language", "seq_len", "loss_on", "val_size",
                     "split_seed", "max_rows", "drop_translation", "batching", "global_batch_size", "epochs",
                     "max_steps", "lr", "warmup_steps", "weight_decay", "seed", "lora_r", "lora_alpha",
                     "lora_dropout", "lora_target_modules")


# Written into every output folder we train into: what makes a non-empty folder "a previous run of ours".
RUN_MARKER = ".jinstruct-run"
MODEL_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json", "model-00001-of-*.safetensors", "pytorch_model-00001-of-*.bin")


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
        raise ValueError(f"--output {output} is the base model's own folder; an adapter written there would be "
                         "attached whenever that folder is loaded as the base. Pick a new --output folder.")
    if not output.exists():
        return
    if not output.is_dir():
        raise ValueError(f"--output {output} is a file; give a folder (new or a previous run of this trainer)")
    weights = [p.name for pattern in MODEL_WEIGHTS for p in output.glob(pattern)]
    if (output / "config.json").is_file() and weights:
        raise ValueError(f"--output {output} holds a model ({weights[0]}, config.json); writing an adapter "
                         "beside it would change what that folder loads as. Pick a new --output folder.")
    entries = sorted(p.name for p in output.iterdir())
    if entries and not is_previous_run(output) and not config.overwrite:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ValueError(f"--output {output} is not empty ({shown}) and is not a previous run of jinstruct train; "
                         "pick a new or empty folder, or pass --overwrite to write into it (files of the same "
                         "names are replaced)")


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
    output = Path(config.output)
    check_output(config)
    if config.resume and (found := checkpoint.newest_checkpoint(output)) is not None:
        _check_same_run(checkpoint.read_state(found)["config"], config, found)  # before anything is loaded
    _single_process_env(config)
    accelerator, ds_config = _make_accelerator(config)
    try:
        return _run(config, output, accelerator, ds_config)
    finally:
        _release(accelerator)


def _run(config: TrainConfig, output: Path, accelerator, ds_config: dict | None) -> Path:
    from accelerate.utils import set_seed
    from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

    say = accelerator.print
    world, rank = accelerator.num_processes, accelerator.process_index
    output.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        (output / RUN_MARKER).write_text(json.dumps({"written_by": "jinstruct train"}) + "\n", encoding="utf-8")
    set_seed(config.seed)

    # ---- base model, tokenizer, LoRA
    precision = accelerator.mixed_precision  # "no", "bf16", "fp16"
    base_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    if config.base_fp32:
        base_dtype = torch.float32
    attn = config.attn_implementation or _default_attention()  # None: transformers picks per architecture
    tokenizer = AutoTokenizer.from_pretrained(config.model, revision=config.model_revision,
                                              trust_remote_code=config.trust_remote_code)
    pad_id = next(t for t in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id)
                  if t is not None)
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=base_dtype, attn_implementation=attn,
                                                 revision=config.model_revision,
                                                 trust_remote_code=config.trust_remote_code)
    attn = model.config._attn_implementation  # e.g. eager for Gemma 2, whose logit soft-capping sdpa lacks
    model.config.use_cache = False
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    batching = config.batching
    cannot_pack = packing_unsupported(model)
    if cannot_pack and batching == "pack":
        raise ValueError(f"batching=pack cannot keep packed examples apart on this model: {cannot_pack}; "
                         "use --batching group (or auto)")
    if cannot_pack and batching == "auto":
        batching = "group"
        say(f"batching: group (one example per row), since {cannot_pack}")
    model, targets = add_lora(model, config)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f"model {config.model} ({model.config.model_type}, {base_dtype}, attention {attn}); "
        f"LoRA r={config.lora_r} alpha={config.lora_alpha} on {targets}: {n_trainable:,} trainable parameters")

    # ---- data: the main process tokenizes and caches, the others read the cache
    with accelerator.main_process_first():
        data = prepare_data(config, tokenizer, cache_dir=output / "cache",
                            progress=config.progress and accelerator.is_main_process)
    for line in data.report.lines():
        say(line)
    say("loss on: " + ("the response tokens only (prompt masked; the paper used the whole sequence: --loss-on all)"
                       if config.loss_on == "response" else "the whole sequence, prompt included (as the paper)"))
    lengths, targets_per_example = data.train.lengths, data.train.target_tokens()

    steps_per_epoch = math.ceil(len(data.train) / config.global_batch_size)
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)
    say(f"{len(data.train)} training examples, global batch {config.global_batch_size} examples "
        f"({world} process(es), up to {config.micro_batch_size} rows of <= {config.seq_len} tokens per micro batch, "
        f"batching={config.batching}); {steps_per_epoch} steps/epoch, {total_steps} steps; precision {precision}")

    def step_examples(step: int) -> np.ndarray:
        """The examples of optimizer step `step`: a fresh permutation per epoch, seeded by (seed, epoch)."""
        epoch, k = divmod(step, steps_per_epoch)
        perm = np.random.default_rng([config.seed, epoch]).permutation(len(data.train))
        return perm[k * config.global_batch_size:(k + 1) * config.global_batch_size]

    # ---- optimizer and schedule (AdamW, linear warm-up then linear decay to 0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _make_optimizer(params, config, ds_config)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(config.warmup_steps, total_steps), total_steps)
    if ds_config is not None:
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.micro_batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    using_deepspeed = ds_config is not None
    if using_deepspeed:  # the engine steps the optimizer, so torch cannot see the order; it is right
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
    compute_dtype = accelerator.unwrap_model(model).get_input_embeddings().weight.dtype  # DeepSpeed may cast

    # ---- resume
    start_step, counters = 0, {"examples": 0, "tokens": 0, "positions": 0, "train_seconds": 0.0}
    metrics = MetricsLog(output / "metrics.jsonl", enabled=accelerator.is_main_process)
    if accelerator.is_main_process:
        for stale in checkpoint.remove_partial(output):
            say(f"removed unfinished checkpoint {stale} (from an interrupted save)")
    accelerator.wait_for_everyone()
    if config.resume:
        found = checkpoint.newest_checkpoint(output)
        if found is None:
            say(f"--resume: no complete checkpoint in {checkpoint.checkpoint_dir(output)}; starting from step 0")
        else:
            _check_same_run(checkpoint.read_state(found)["config"], config, found)
            state = checkpoint.load(accelerator, model, optimizer, scheduler, found)
            start_step, counters = state["step"], state["counters"]
            say(f"resumed from {found} at step {start_step}")
    metrics.truncate_after(start_step)

    # ---- the loop
    from tqdm.auto import tqdm

    bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
               disable=not (config.progress and accelerator.is_main_process))
    flatten = attn.startswith("flash")  # varlen: the micro batch becomes one row
    cost = CostModel.from_config(accelerator.unwrap_model(model).config)
    val_loss = None
    started = time.perf_counter()
    for step in range(start_step, total_steps):
        t0 = time.perf_counter()
        ids = step_examples(step)
        mode, plan = choose_plan(ids, lengths, batching, config.micro_batch_size, config.seq_len, world,
                                 cost, varlen=flatten)
        n_target = int(targets_per_example[ids].sum())  # over every process: the loss denominator
        model.train()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, positions, real tokens (this process)
        for m, micro in enumerate(plan[rank]):
            batch = collate(micro, data.train, pad_id, mode, config.pad_to_multiple_of, config.padding_side,
                            flatten)
            last = m == len(plan[rank]) - 1
            with _micro_step(accelerator, model, sync=last, deepspeed=using_deepspeed):
                inputs = model_inputs(batch, accelerator.device, attn, compute_dtype)
                logits = model(**inputs, use_cache=False).logits
                loss_sum = token_loss_sum(logits, batch.tensors["labels"].to(accelerator.device))
                totals += torch.tensor([loss_sum.item(), batch.positions, batch.real_tokens], dtype=torch.float64)
                if last:  # before the optimizer can step: stop on NaN/inf, on every process alike
                    totals = accelerator.reduce(totals.to(accelerator.device), "sum").cpu()
                    if not math.isfinite(totals[0].item()):
                        raise NonFiniteLossError(
                            f"loss is {totals[0].item() / max(n_target, 1)} at step {step + 1} (epoch "
                            f"{step // steps_per_epoch + 1}); nothing of this step was applied. Lower --lr, "
                            "use --precision bf16/fp32, or resume from the last checkpoint with --resume.")
                # Sum over the step / the step's target tokens; processes' gradients are averaged, so x world.
                accelerator.backward(loss_sum * (world / max(n_target, 1)))
        if using_deepspeed:
            grad_norm = accelerator.deepspeed_engine_wrapped.get_global_grad_norm()  # the engine stepped
        else:
            # 0 turns clipping off; an infinite bound still returns the norm for the log.
            grad_norm = accelerator.clip_grad_norm_(params, config.max_grad_norm or math.inf)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        scheduler.step()

        # ---- bookkeeping, eval, checkpoint
        seconds = time.perf_counter() - t0
        loss = totals[0].item() / max(n_target, 1)
        counters["examples"] += len(ids)
        counters["tokens"] += int(totals[2])
        counters["positions"] += int(totals[1])
        counters["train_seconds"] += seconds
        done = step + 1
        record: dict[str, Any] = {
            "step": done, "epoch": round(done / steps_per_epoch, 4), "loss": loss,
            "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_s": totals[2].item() / seconds, "padded_fraction": 1 - totals[2].item() / totals[1].item(),
            "examples": counters["examples"], "tokens": counters["tokens"], "batching": mode,
        }
        if data.val is not None and (done % config.eval_every == 0 or done == total_steps):
            val_loss = evaluate(model, data.val, accelerator, config, pad_id, attn, compute_dtype, cost, batching)
            record["val_loss"] = val_loss
        if done % config.log_every == 0 or "val_loss" in record or done == total_steps:
            metrics.write(record)
            if config.report_to != "none":
                accelerator.log(record, step=done)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tokens_per_s']:,.0f}",
                        **({"val": f"{val_loss:.4f}"} if "val_loss" in record else {}))
        bar.update(1)
        stopping = done == config.stop_at_step and done < total_steps  # absolute step: a resume runs on
        if done % config.save_every == 0 or done == total_steps or stopping:
            state = {"step": done, "counters": counters, "config": config.to_dict()}
            saved = checkpoint.save(accelerator, model, optimizer, scheduler, output, done, state,
                                    config.keep_checkpoints)
            bar.write(f"checkpoint {saved}") if accelerator.is_main_process else None
        if stopping:
            bar.close()
            say(f"stopped after step {done} of {total_steps} (--stop-at-step); continue with --resume")
            return output
    bar.close()

    # ---- the adapter (+ resolved config, + merged model)
    padded = 1 - counters["tokens"] / max(counters["positions"], 1)
    summary = {
        "steps": total_steps, "steps_per_epoch": steps_per_epoch, "world_size": world,
        "precision": precision, "base_dtype": str(base_dtype).replace("torch.", ""), "attention": attn,
        "batching": batching,
        "deepspeed": ds_config, "lora_target_modules": targets, "trainable_parameters": n_trainable,
        "examples_seen": counters["examples"], "tokens_seen": counters["tokens"], "padded_fraction": padded,
        "train_seconds": counters["train_seconds"], "wall_seconds_this_invocation": time.perf_counter() - started,
        "final_val_loss": val_loss, "data": asdict(data.report),
        "peak_gpu_memory_gib": (torch.cuda.max_memory_allocated() / 2**30) if torch.cuda.is_available() else None,
        "loss_on_note": ("response tokens only" if config.loss_on == "response"
                         else "whole sequence, prompt included (paper)"),
    }
    save_adapter(model, tokenizer, accelerator, output, config, summary)
    if config.merge:
        save_merged(config, output, accelerator, base_dtype)
    say(f"padded fraction {padded:.1%}; adapter written to {output}")
    return output


# ---------------------------------------------------------------- pieces of the recipe


@torch.no_grad()
def evaluate(model, val: TokenizedSet, accelerator, config: TrainConfig, pad_id: int, attn: str,
             dtype: torch.dtype, cost: CostModel | None = None, batching: str | None = None) -> float:
    """Token-weighted mean loss over the whole validation set (same masking as training)."""
    model.eval()
    ids = np.arange(len(val))
    mode, plan = choose_plan(ids, val.lengths, batching or config.batching, config.micro_batch_size, config.seq_len,
                             accelerator.num_processes, cost, varlen=attn.startswith("flash"))
    total = torch.zeros(1, dtype=torch.float64)
    for micro in plan[accelerator.process_index]:
        batch = collate(micro, val, pad_id, mode, config.pad_to_multiple_of, config.padding_side,
                        flatten=attn.startswith("flash"))
        logits = model(**model_inputs(batch, accelerator.device, attn, dtype), use_cache=False).logits
        total += token_loss_sum(logits, batch.tensors["labels"].to(accelerator.device)).item()
    total = accelerator.reduce(total.to(accelerator.device), "sum").cpu()
    model.train()
    return total.item() / max(int(val.target_tokens().sum()), 1)


def save_adapter(model, tokenizer, accelerator, output: Path, config: TrainConfig, summary: dict) -> None:
    """adapter_config.json + adapter_model.safetensors + tokenizer + training_config.json."""
    state = None
    if accelerator.state.deepspeed_plugin is not None and accelerator.state.deepspeed_plugin.zero_stage == 3:
        state = accelerator.get_state_dict(model)  # gathers the partitioned weights
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(output, state_dict=state, safe_serialization=True)
        tokenizer.save_pretrained(output)
        resolved = {**config.to_dict(), "run": summary}
        # `seq_len` sits at the top level: the leaderboard reads it to flag examples longer than training saw.
        (output / "training_config.json").write_text(json.dumps(resolved, indent=1, ensure_ascii=False, default=str),
                                                     encoding="utf-8")
    accelerator.wait_for_everyone()


def save_merged(config: TrainConfig, output: Path, accelerator, dtype: torch.dtype) -> None:
    if accelerator.is_main_process:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype, revision=config.model_revision,
                                                    trust_remote_code=config.trust_remote_code)
        merged = PeftModel.from_pretrained(base, str(output)).merge_and_unload()
        merged.save_pretrained(output / "merged", safe_serialization=True)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(output).save_pretrained(output / "merged")
        accelerator.print(f"merged model written to {output / 'merged'}")
    accelerator.wait_for_everyone()


def _make_optimizer(params, config: TrainConfig, ds_config: dict | None):
    kwargs = dict(lr=config.lr, betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps,
                  weight_decay=config.weight_decay)
    offload = (ds_config or {}).get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    if offload == "cpu":  # DeepSpeed's CPU optimizer offload needs its CPU Adam
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, adamw_mode=True, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


@contextlib.contextmanager
def _micro_step(accelerator, model, sync: bool, deepspeed: bool):
    """Gradients of non-final micro batches are accumulated without syncing or stepping.

    The number of micro batches per step varies with packing, so accelerate's fixed-count
    `accumulate()` does not fit; we tell it directly which micro batch ends the step (its DeepSpeed
    wrapper reads the same flag to set the engine's accumulation boundary).
    """
    accelerator.gradient_state._set_sync_gradients(sync)
    context = contextlib.nullcontext() if (sync or deepspeed) else accelerator.no_sync(model)
    with context:
        yield
    accelerator.gradient_state._set_sync_gradients(True)


def _default_attention() -> str | None:
    if torch.cuda.is_available():
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return None  # transformers' choice: sdpa where the architecture supports it, else eager


def _resolve_precision(config: TrainConfig) -> str:
    if config.precision != "auto":
        return {"fp32": "no"}.get(config.precision, config.precision)
    # `accelerate launch` exports ACCELERATE_MIXED_PRECISION=no when its config names none, so the
    # launcher's setting is not consulted: --precision decides.
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


def _deepspeed_json(config: TrainConfig) -> dict | None:
    path = config.deepspeed
    if path is None and os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
        if not path:
            raise ValueError("accelerate is set up for DeepSpeed without a config file; set deepspeed_config_file "
                             "in the accelerate config (see training/configs/) or pass --deepspeed zero2")
    if path is None:
        return None
    ds = json.loads(deepspeed_config_path(path).read_text(encoding="utf-8"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    # Our loop marks accumulation boundaries itself and normalises the loss over the whole step, so
    # DeepSpeed sees one micro batch per step and must not rescale the loss.
    ds["train_micro_batch_size_per_gpu"] = config.micro_batch_size
    ds["gradient_accumulation_steps"] = 1
    ds["train_batch_size"] = config.micro_batch_size * world
    ds["gradient_clipping"] = config.max_grad_norm
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise ValueError(f"DeepSpeed config {path}: remove the {key!r} section; the recipe sets the optimizer "
                             "and schedule from the training config")
    return ds


def _make_accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs

    ds_config = _deepspeed_json(config)
    plugin, handlers = None, []
    if ds_config is not None:
        stage = ds_config.get("zero_optimization", {}).get("stage", 0)
        plugin = DeepSpeedPlugin(hf_ds_config=ds_config, zero3_init_flag=stage == 3)
        if not torch.cuda.is_available():
            # Without a GPU accelerate picks no backend and would count every process as rank 0 of 1.
            handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(mixed_precision=_resolve_precision(config), deepspeed_plugin=plugin,
                              kwargs_handlers=handlers,
                              log_with=None if config.report_to == "none" else config.report_to,
                              project_dir=config.output)
    if config.report_to != "none":
        accelerator.init_trackers("jinstruct-train", config={k: v for k, v in config.to_dict().items()
                                                             if isinstance(v, (int, float, str, bool))})
    if ds_config is not None:
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
    return accelerator, ds_config


def _single_process_env(config: TrainConfig) -> bool:
    """DeepSpeed needs a process group even for one process; make one when not under a launcher.

    The group then lives as long as the Python process (DeepSpeed caches it), so a later in-process
    run (the demo, the tests) reuses it.
    """
    if config.deepspeed is None or "LOCAL_RANK" in os.environ:
        return False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return True


def _release(accelerator) -> None:
    """Leave the process reusable: train() may be called again, with or without DeepSpeed."""
    from accelerate.state import AcceleratorState, GradientState

    if accelerator.trackers:
        accelerator.end_training()
    accelerator.free_memory()
    os.environ.pop("ACCELERATE_USE_DEEPSPEED", None)  # set by Accelerator(deepspeed_plugin=...)
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # ZeRO-3 registers itself globally for from_pretrained
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _check_same_run(saved: dict, config: TrainConfig, folder: Path) -> None:
    current = config.to_dict()
    differ = [k for k in RESUME_MUST_MATCH if saved.get(k) != current.get(k)]
    if differ:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in differ)
        raise ValueError(f"cannot resume from {folder}: the run differs in {details}. Use the original settings, "
                         "or a new --output folder for a new run.")


if __name__ == "__main__":
    raise SystemExit(main())
