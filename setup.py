"""What pyproject.toml cannot say: the top-level `policies/` and `charts/` folders ship inside the wheel as
the packages `deployer.policies` and `deployer.charts` (data beside the code, found without a checkout)."""

from setuptools import find_namespace_packages, setup

DATA_PACKAGES = {"deployer.policies": "policies", "deployer.charts": "charts"}

setup(
    # Namespace packages too: deployer/schema/ holds only JSON Schemas (no __init__.py).
    packages=[
        *find_namespace_packages(include=["blubber*", "deployer*"], exclude=["*.__pycache__"]),
        *DATA_PACKAGES,
    ],
    package_dir=DATA_PACKAGES,
)
