"""Sphinx configuration for the rpcframe documentation."""

project = "rpcframe"
copyright = "rpcframe authors"
author = "rpcframe authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "oslo_config.sphinxext",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False

intersphinx_mapping = {"python": ("https://docs.python.org/3", None)}
intersphinx_disabled_reftypes = ["*"]

html_theme = "alabaster"
html_static_path: list[str] = []
exclude_patterns = ["build"]
