"""What the lm_eval start-up hook costs every Python start: `python -X importtime -c pass`, hook on and off.

The hook is one line in `jinstruct-lm-eval.pth`; it imports `jinstruct` and `jinstruct.lm_eval_hook`
(os and sys only) and puts a finder on `sys.meta_path`. This runs the interpreter of the venv it is
started with, alternating hook on / hook off (`JINSTRUCT_LM_EVAL_AUTOLOAD=0`), and reports:
- the import time of the hook's modules as `-X importtime` prints it (hook on; target < 5 ms),
- the modules of jinstruct and of heavy packages imported at start (target: jinstruct's two only),
- wall time of `python -c pass` on and off (noisy on a shared machine; the import time is the figure).

    .venv/bin/python benchmarks/startup.py --runs 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

HOOK_MODULES = ("jinstruct", "jinstruct.lm_eval_hook")


def importtime(env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """{module: (nesting depth, cumulative microseconds)} from one `python -X importtime -c pass`."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "pass"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.removeprefix("import time:").split("|")
            out[name.strip()] = (len(name) - len(name.lstrip()), int(cumulative))
    return out


def hook_cost(times: dict[str, tuple[int, int]]) -> int:
    """Microseconds of the hook's imports; a module imported inside another counts once, in its parent."""
    mine = {name: t for name, t in times.items() if name in HOOK_MODULES}
    if not mine:
        return 0
    top = min(depth for depth, _ in mine.values())
    return sum(us for depth, us in mine.values() if depth == top)


def wall(env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30, help="interleaved on/off pairs")
    args = p.parse_args(argv)
    pth = Path(sysconfig.get_paths()["purelib"]) / "jinstruct-lm-eval.pth"
    if not pth.is_file():
        sys.exit(f"{pth} is missing: install the project into this venv first (pip install -e .)")
    on = {k: v for k, v in os.environ.items() if k != "JINSTRUCT_LM_EVAL_AUTOLOAD"}
    off = {**on, "JINSTRUCT_LM_EVAL_AUTOLOAD": "0"}
    hook_us, site_on, site_off, wall_on, wall_off, extra = [], [], [], [], [], set()
    for _ in range(args.runs):
        t_on, t_off = importtime(on), importtime(off)
        hook_us.append(hook_cost(t_on))
        site_on.append(t_on.get("site", (0, 0))[1])
        site_off.append(t_off.get("site", (0, 0))[1])
        extra |= {m for m in t_on if m.startswith(("jinstruct", "lm_eval", "torch", "transformers", "numpy"))}
        wall_on.append(wall(on))
        wall_off.append(wall(off))
    med = statistics.median
    print(f"python {sys.version.split()[0]} ({sys.executable}), {args.runs} runs each, medians")
    print(f"hook modules ({', '.join(HOOK_MODULES)}) by -X importtime: {med(hook_us) / 1000:.2f} ms "
          f"(min {min(hook_us) / 1000:.2f}, max {max(hook_us) / 1000:.2f}); target < 5 ms: "
          + ("met" if med(hook_us) < 5000 else "MISSED"))  # fmt: skip
    print(
        f"jinstruct / lm_eval / torch / transformers / numpy modules imported at start: {sorted(extra) or 'none'}"
    )
    print(
        f"site (all .pth files) cumulative: on {med(site_on) / 1000:.2f} ms, off {med(site_off) / 1000:.2f} ms"
    )
    print(f"`python -c pass` wall: on {med(wall_on) * 1000:.1f} ms, off {med(wall_off) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
