"""lppo's own package, in three parts that import only downward:

- `lppo.core`: the contracts every process imports (config, vocabularies, wire, transport,
  weight files, errors, logs, signals); it imports nothing else of the project.
- the shell: `lppo.cli`, `lppo.commands`, `lppo.launcher`, `lppo.progress`, `lppo.demo`: the
  commands users type, on top of actor/, learner/, store/ and dashboard/.
- `lppo.testing`: tools for tests and benchmarks, imported by no product module.

Layers, top to bottom: shell -> actor/, learner/, dashboard/ -> store/ -> lppo.core
(tests/unit/test_layers.py fails on an import that runs back up).
"""
