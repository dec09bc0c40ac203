"""Sphinx configuration for the rpcframe documentation."""

project = "rpcframe"
copyright = "rpcframe authors"
author = "rpcframe authors"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "oslo_config.sphinxext",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False


html_theme = "alabaster"
html_static_path: list[str] = []
exclude_patterns = ["build"]
