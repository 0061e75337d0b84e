"""Dockerfile model: phases, instruction values, quoting, and the one renderer."""
