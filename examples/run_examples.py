"""Run the example validation scripts; exit non-zero if any fails.

``--fast`` runs only the scripts listed in FAST (each takes under a minute); they are part of
``make test`` so that examples cannot rot.  Without ``--fast`` every ``examples/*.py`` script runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Scripts that finish in under a minute on the 2-core reference machine.
FAST = [
    "attention_validation.py",
    "develin_sturmfels.py",
    "maclagan_sturmfels.py",
    "tn_validation.py",
    "tropical_linear_algebra.py",
    "tropical_tour.py",
]


def main(argv: list[str]) -> int:
    fast = "--fast" in argv
    names = FAST if fast else sorted(p.name for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    failed = []
    for name in names:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / name)], capture_output=True, text=True)
        dt = time.perf_counter() - t0
        status = "ok" if proc.returncode == 0 else f"FAILED (exit {proc.returncode})"
        print(f"examples/{name:<36s} {dt:7.1f}s  {status}")
        if proc.returncode != 0:
            failed.append(name)
            sys.stdout.write(proc.stdout[-4000:])
            sys.stderr.write(proc.stderr[-4000:])
    print(f"example scripts: {len(names) - len(failed)} ok, {len(failed)} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
