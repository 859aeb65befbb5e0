"""Recipes: ``python -m recipes.<algo>_<env> fit``, wiring plus a YAML of paper values."""
