"""Draw the pictures of the tropical-geometry guide (plane curves next to their dual subdivisions).

Run ``python docs/make_figures.py``; it writes small deterministic SVG files to ``docs/guide/figures/``.
Intended to be called from ``docs/conf.py`` at build time so that the pictures always match the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tropix.tropical import TropicalPolynomial  # noqa: E402
from tropix.tropical.curves import plot_curve, plot_subdivision  # noqa: E402

OUT = HERE / "guide" / "figures"

FIGURES = {
    # a smooth conic: unimodular triangulation of 2Δ, 4 vertices, 6 rays, genus 0
    "conic": ("max(0, x, y, 2*x - 1, x + y + 1, 2*y - 1)", (-4, -4, 3, 3)),
    # a cubic whose subdivision has an edge of lattice length 2 (a weight-2 edge) and a genus-1 cycle
    "cubic": ("max(0, 2*x, 3*x - 3, 1 + y, 3 + x + y, 2 + 2*x + y, 2*y, 2 + x + 2*y, 3*y - 3)", (-5, -5, 4, 4)),
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "tropix", "font.size": 8})
    for name, (text, box) in FIGURES.items():
        p = TropicalPolynomial.parse(text)
        fig, (a, b) = plt.subplots(1, 2, figsize=(6.4, 3.2))
        plot_curve(p, ax=a, box=box, show_regions=True)
        a.set_title(f"V(p), {len(p.hypersurface().vertices)} vertices", fontsize=9)
        plot_subdivision(p, ax=b)
        b.set_title("dual regular subdivision of Newt(p)", fontsize=9)
        fig.tight_layout()
        fig.savefig(OUT / f"{name}.svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)


if __name__ == "__main__":
    main()
