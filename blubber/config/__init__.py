"""Config v4 model: one module per section, each with `parse`, `merge`, `check` and `instructions`."""
