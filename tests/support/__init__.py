"""Helpers the tests share (not fixtures: those live in the conftests)."""
