"""`harness report`: the static comparison site built from run directories (see site.py)."""
