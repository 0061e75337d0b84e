"""Blubber: compile a declarative YAML config (v4) into an optimised multi-stage Dockerfile.

Pure: never runs a process, never touches the network; the same input gives the same Dockerfile.
"""
