"""The ops policies deployer applies by default, as package data.

This folder stays at the top of the repository, where ops edit it; the wheel installs it as the package
`deployer.policies` (setup.py maps it), so an installed deployer finds its policies next to its code.
"""

from pathlib import Path

DIR = Path(__file__).resolve().parent
BLUBBER = DIR / "default.yaml"
"""Defaults and enforcements for Blubber configs."""
DEPLOY = DIR / "deploy.yaml"
"""Rules and defaults for deploy.yaml."""
