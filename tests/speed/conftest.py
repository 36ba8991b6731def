"""Shared fixtures of the speed tests: one torch thread (tests/conftest.py), so that every run splits work the same way."""
