"""The contracts every process imports: nothing here imports actor/, learner/, store/ or
dashboard/ (tests/unit/test_layers.py checks).

- `lppo.core.config`: the typed config tree, its loader and overrides.
- `lppo.core.vocab`: the values the wire, the config, the rules and the ledger share (verdicts,
  sample statuses, drop reasons).
- `lppo.core.wire`: the typed messages between actors and the learner, and their codec.
- `lppo.core.transport`: the ZeroMQ sockets that carry them.
- `lppo.core.weightfiles`: published weight folders (safetensors + manifest) and their digests.
- `lppo.core.errors`, `lppo.core.logs`, `lppo.core.signals`: the user error, logging setup and
  graceful shutdown every entry point shares.

Importing `lppo.core` loads nothing; import the module you need.
"""
