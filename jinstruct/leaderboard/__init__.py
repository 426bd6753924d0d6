"""`jinstruct leaderboard`: which Japanese model is better, and did instruction tuning help? On one page.

Scores a suite (default: the paper's Table II) over the models of a small YAML file, or gathers
lm-eval result JSONs that already exist, and writes under `results/<suite>/`: the raw lm-eval JSONs
(`raw/`), `leaderboard.md`, `leaderboard.csv`, a self-contained `leaderboard.html` and PNG charts.
Results already on disk are skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from jinstruct.leaderboard.config import METADATA_KEYS, ConfigError, RunConfig, Suite, load_models, load_suite
from jinstruct.leaderboard.store import Store, gather
from jinstruct.leaderboard.table import REFERENCE_FILE, Leaderboard, build
from jinstruct.names import check_keys

__all__ = ["ConfigError", "Leaderboard", "main", "run_leaderboard"]


def run_leaderboard(
    cfg: RunConfig | None,
    suite: Suite,
    out_dir: Path,
    *,
    score: bool = True,
    gather_from: list[Path] | None = None,
    force: bool = False,
    bootstrap_iters: int = 1000,
    reference: Path | None = REFERENCE_FILE,
    banner: str | None = None,
    only: list[str] | None = None,
    shard: tuple[int, int] | None = None,
) -> tuple[Leaderboard | None, dict[str, Path]]:
    """Score what is missing (unless score=False), then write every output. Returns the table and paths.

    With `shard=(K, N)` only every N-th unit is scored and nothing is rendered (shards of a job array
    share the output folder; `--render-only` writes the table once all are done): returns (None, {}).
    """
    from jinstruct.leaderboard.render import write_all

    store = Store(out_dir)
    if gather_from:
        written = gather(gather_from, store)
        print(f"leaderboard: gathered {len(written)} task results into {store.raw}")
    if score and cfg is not None:
        from jinstruct.leaderboard.runner import run

        report = run(cfg, suite, store, force=force, bootstrap_iters=bootstrap_iters, only=only, shard=shard)
        where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
        print(
            f"leaderboard: scored {len(report.scored)} runs, skipped {len(report.skipped)} already on disk{where}"
        )
    if shard:
        print(
            f"leaderboard: shard {shard[0]}/{shard[1]} done; once every shard is, write the table with "
            f"`jinstruct leaderboard --render-only --out {out_dir}`"
        )
        return None, {}
    lb = build(store.records(), suite, cfg, reference)
    return lb, write_all(lb, out_dir, banner)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jinstruct leaderboard",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Example: jinstruct leaderboard --models models.yaml   (see README, Leaderboard, for the file format)",
    )
    p.add_argument(
        "--models", type=Path, help="YAML file listing the models (base model, adapter, prompt version, ...)"
    )
    p.add_argument("--suite", default=None, help="built-in suite name (default: paper) or a suite YAML file")
    p.add_argument(
        "--gather",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="lm-eval result JSONs (files or folders) to include; with no --models, only gathers",
    )
    p.add_argument("--out", type=Path, help="output folder (default: results/<suite>)")
    p.add_argument("--limit", type=int, help="score only the first N documents of each task (quick checks)")
    p.add_argument(
        "--metadata",
        type=json.loads,
        default=None,
        help='task metadata as JSON, e.g. \'{"data_dir": "/data/JGLUE", "vqa_path": "/data/qa.json"}\'',
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="score only these models (the table shows all)")
    p.add_argument("--force", action="store_true", help="re-score results that are already on disk")
    p.add_argument(
        "--render-only", action="store_true", help="write the outputs from what is on disk; score nothing"
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="score only every N-th (model, task, shots) unit, starting at unit K (0..N-1), and render "
        "nothing: one job of an array; then --render-only (README: Slurm array)",
    )
    p.add_argument(
        "--bootstrap-iters", type=int, default=1000, help="lm-eval bootstrap iterations for stderr"
    )
    p.add_argument(
        "--reference",
        default=str(REFERENCE_FILE),
        help="published figures to show as reference rows ('none' to leave them out)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.models and not args.gather and not args.render_only:
        _parser().print_usage(sys.stderr)
        print(
            "jinstruct leaderboard: give --models FILE to score, --gather PATH to collect existing results, "
            "or --render-only",
            file=sys.stderr,
        )
        return 2
    try:
        cfg = load_models(args.models) if args.models else None
        suite_name = args.suite or (cfg.suite if cfg and cfg.suite else "paper")
        suite = load_suite(suite_name)
    except ConfigError as err:
        print(f"jinstruct leaderboard: {err}", file=sys.stderr)
        return 2
    if cfg is not None:
        if args.limit is not None:
            cfg.limit = args.limit
        if args.metadata:
            if not isinstance(args.metadata, dict):
                print("jinstruct leaderboard: --metadata must be a JSON object", file=sys.stderr)
                return 2
            try:
                check_keys(args.metadata, METADATA_KEYS, "--metadata", ConfigError)
            except ConfigError as err:
                print(f"jinstruct leaderboard: {err}", file=sys.stderr)
                return 2
            cfg.metadata.update(args.metadata)
    out_dir = args.out or Path("results") / suite.name
    shard = None
    if args.shard:
        from jinstruct.leaderboard.runner import parse_shard

        if args.render_only or not cfg:
            print(
                "jinstruct leaderboard: --shard scores a part of --models; it does not go with --render-only",
                file=sys.stderr,
            )
            return 2
        try:
            shard = parse_shard(args.shard)
        except ValueError as err:
            print(f"jinstruct leaderboard: {err}", file=sys.stderr)
            return 2
    reference = None if str(args.reference).lower() == "none" else Path(args.reference)
    try:
        lb, paths = run_leaderboard(
            cfg,
            suite,
            out_dir,
            score=not args.render_only,
            gather_from=args.gather,
            force=args.force,
            bootstrap_iters=args.bootstrap_iters,
            reference=reference,
            only=args.only,
            shard=shard,
        )
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"jinstruct leaderboard: {err}", file=sys.stderr)
        return 1
    if shard:
        return 0
    print(paths["md"].read_text(encoding="utf-8"))
    print("wrote: " + ", ".join(str(p) for p in paths.values()))
    return 0
