"""The base Helm chart(s) a service chart is rendered from, as package data.

This folder stays at the top of the repository; the wheel installs it as the package `deployer.charts`
(setup.py maps it), so an installed deployer renders charts without a checkout.
"""

from pathlib import Path

SERVICE = Path(__file__).resolve().parent / "service"
"""The base chart of every service."""
