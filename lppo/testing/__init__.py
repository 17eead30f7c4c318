"""Tools for the test suite, the benchmarks and the README's screenshots; no product module
imports them (tests/unit/test_layers.py checks).

- `lppo.testing.postgres`: a private, throwaway PostgreSQL cluster and free loopback ports.
- `lppo.testing.simulate`: synthetic runs written through the ledger API.
- `lppo.testing.wirecheck`: a peer that speaks the wire, for the transport tests.
- `lppo.testing.browser`, `lppo.testing.screenshots`: headless Chromium over the dashboard.

Importing `lppo.testing` loads nothing; import the module you need.
"""
