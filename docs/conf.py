"""Sphinx configuration for the tropix documentation (built by `make docs`, warnings are errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "tropix"
author = "the tropix developers"
release = "0.1.0"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["dollarmath", "colon_fence"]
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
exclude_patterns = ["_build"]
html_theme = "alabaster"
suppress_warnings = ["myst.header"]
nitpicky = False

# Pictures are drawn from the code at build time (never committed), so they always match it.
import subprocess  # noqa: E402

subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "make_figures.py")], check=True)
