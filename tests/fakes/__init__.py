"""Fakes of the application's ports for fast tests (proven honest by tests/integration)."""
