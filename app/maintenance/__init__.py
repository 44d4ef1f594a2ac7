"""Periodic reconciliation: the broker is a hint, the database is the truth."""
