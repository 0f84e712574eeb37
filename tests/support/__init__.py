"""Importable helpers for the tests (fixtures live in conftest.py files, fakes of third
parties in tests/fakes/). Tests import from here, never from conftest.py or from another
test module."""
