"""The learner's pure algorithm units (docs/design.md, "The method").

Each module is one rule of the method as small pure functions (or a small class with
serialisable state), independent of sockets, the ledger and the wire format:

- `progress`   per-sample EMA of the unguided pass rate, learning progress, LP weights
- `prefix`     PG-sampling: the prefix ratio per sample and the cut of the expert solution
- `staleness`  AReaL-style admission control under a staleness bound
- `curation`   drop reasons for uninformative groups, sample status transitions, rechecks
- `advantages` GRPO / Dr.GRPO / REINFORCE++-baseline advantages, LP weights applied
- `loss`       token-level PPO clipped loss (TIS, KL to a reference, prefix handling)
- `sample`     one call per arrived group composing progress, prefix and curation

Nothing is imported here: `loss` needs torch, the rest needs only numpy and the config.
"""
