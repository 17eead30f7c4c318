"""Ledger schema revisions, oldest first (0001 is the first released schema)."""
