"""The results file of ``bench/gpu_checks.sh``: each bench step records its figures in one JSON file, and
``summary`` prints them against the goals of issue 16.

Usage::

    python bench/results.py summary RESULTS.json
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def record(path: str | os.PathLike | None, section: str, data: dict) -> None:
    """Store ``data`` as ``section`` of the JSON file ``path`` (created if missing; nothing if None),
    keeping the other sections. Written whole (temporary file, then rename)."""
    if not path:
        return
    path = Path(path)
    results = json.loads(path.read_text()) if path.exists() else {}
    results[section] = data
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _ratio(results: dict, section: str, numerator: str, denominator_section: str, denominator: str):
    try:
        return results[section][numerator] / results[denominator_section][denominator]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def summary(results: dict) -> list[str]:
    """The lines that answer the issue's goals from ``results`` (sections that are missing read n/a)."""
    same, flags, compiled = (results.get(k, {}) for k in ("same_settings", "flags", "compiled"))
    decode = results.get("decode", {})
    env = results.get("environment", {})
    lines = [f"device: {env.get('device', 'n/a')}; torch {env.get('torch', 'n/a')}"]
    lines.append(f"1. trainer / plain loop fed the same way, same settings: "
                 f"{_fmt(same.get('trainer_img_s'))} / {_fmt(same.get('plain_img_s'))} img/s = "
                 f"{_fmt(same.get('ratio'), digits=3)} (goal >= 0.97)")
    lines.append(f"2. trainer with the GPU defaults and {' '.join(flags.get('trainer_args', [])) or 'flags'} / "
                 f"plain eager NCHW loop: {_fmt(flags.get('trainer_img_s'))} / {_fmt(flags.get('plain_img_s'))} "
                 f"img/s = {_fmt(flags.get('ratio'), digits=3)} (goal >= 1.25)")
    lines.append(f"   the same with --compile: {_fmt(compiled.get('trainer_img_s'))} img/s = "
                 f"{_fmt(_ratio(results, 'compiled', 'trainer_img_s', 'flags', 'plain_img_s'), digits=3)} "
                 "x the plain eager loop")
    memory = same.get("peak_memory_mib") or {}
    lines.append(f"3. peak GPU memory (torch.cuda.max_memory_allocated), same settings: trainer "
                 f"{_fmt(memory.get('trainer'), ' MiB')}, plain loop {_fmt(memory.get('plain'), ' MiB')}: "
                 f"{_fmt(_memory_ratio(memory), digits=3)} (goal <= 1.05)")
    for section, name in ((same, "same settings"), (flags, "flags")):
        util = section.get("gpu_utilization_pct") or {}
        lines.append(f"   GPU utilisation ({name}): trainer {_fmt(util.get('trainer'), ' %')}, plain loop "
                     f"{_fmt(util.get('plain'), ' %')}")
    startup = same.get("startup") or {}
    compile_times = compiled.get("compile") or {}
    lines.append(f"4. time to the first iteration (eager): {_fmt(startup.get('first_iteration_s'), ' s', 2)} "
                 f"from process start (bare `import torch, mmengine.runner`: "
                 f"{_fmt(startup.get('bare_import_s'), ' s', 2)}); compile apart: "
                 f"{_fmt(compile_times.get('compile_s'), ' s', 2)} in torch.compile, first iterations "
                 f"{compile_times.get('first_iterations_s') or 'n/a'} s")
    for name in ("cpu", "gpu"):
        row = decode.get(name) or {}
        lines.append(f"5. JPEG data path, {name} decoding ({decode.get('workers', 'n/a')} workers, "
                     f"{decode.get('size', 'n/a')}): {_fmt(row.get('img_s'))} img/s"
                     + (f" ({row['note']})" if row.get("note") else ""))
    return lines


def _memory_ratio(memory: dict):
    try:
        return memory["trainer"] / memory["plain"]
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "summary":
        sys.stderr.write("usage: python bench/results.py summary RESULTS.json\n")
        return 2
    path = Path(argv[1])
    if not path.exists():
        sys.stderr.write(f"results: {path} does not exist (no step recorded anything)\n")
        return 1
    print("\n".join(summary(json.loads(path.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
