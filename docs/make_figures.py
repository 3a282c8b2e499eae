"""Draw the pictures of the guides into ``docs/guide/figures/`` (git-ignored, never committed).

* tropical-geometry guide: plane curves next to their dual subdivisions (small deterministic SVG files);
* pretrained-models guide: the report figures of a small real run of ``tropix analyze`` on the embedded
  all-MiniLM-L6-v2 (PNG files named ``minilm-*.png``), drawn by :func:`tropix.report.analyze.analyze`
  with the report's own plotting functions.  The run is exactly
  ``tropix analyze --n-texts 2 --max-length 64`` (2 passages of the default corpus, 64 tokens each;
  about 10-15 s on the 2-core reference machine), so the numbers the guide quotes from that command
  are the ones these pictures show.

Run ``python docs/make_figures.py``.  Called from ``docs/conf.py`` at build time so that the pictures
always match the code.  The model figures need the ``models`` extra (the embedded model's package).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
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


# the small run behind the pretrained-models guide: same arguments as
# `tropix analyze --n-texts 2 --max-length 64` (eps = 0.01, the command's default)
MODEL_RUN = {"n_texts": 2, "max_length": 64, "eps": 0.01}
# report figure -> name in docs/guide/figures/
MODEL_FIGURES = {
    "heads_support_fraction.png": "minilm-support.png",
    "heads_temperature_p10.png": "minilm-temperature.png",
    "layers.png": "minilm-layers.png",
    "slices.png": "minilm-slices.png",
}


def draw_model_figures() -> float:
    """Run the small analysis of the embedded model and copy its figures; returns the seconds taken."""
    from tropix.models import load_model
    from tropix.models.corpus import default_corpus
    from tropix.report.analyze import analyze

    t0 = time.perf_counter()
    model = load_model(max_length=MODEL_RUN["max_length"])
    texts = default_corpus(MODEL_RUN["n_texts"])
    with tempfile.TemporaryDirectory() as tmp:
        res = analyze(model, texts, tmp, eps=MODEL_RUN["eps"], max_length=MODEL_RUN["max_length"])
        for src, dst in MODEL_FIGURES.items():
            shutil.copyfile(res.paths[Path(src).stem], OUT / dst)
    return time.perf_counter() - t0


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
    # the report's figures use matplotlib's defaults, not the SVG settings of the curve pictures above
    matplotlib.rc_file_defaults()
    seconds = draw_model_figures()
    print(f"make_figures: pretrained-model figures in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
