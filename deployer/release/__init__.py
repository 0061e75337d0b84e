"""Release management after a ship, one module per command: `status`, `rollback`, `diff`, `prune`, and
the release `lock` a ship and a rollback hold. `target` resolves the release a command acts on and
connects to its cluster."""
