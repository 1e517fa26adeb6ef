"""Package list for setuptools (metadata is in pyproject.toml).

kernels/ lives at the repository root, next to gnn/, so that CUDA sources are easy to find and
compile on their own; it is mapped into the wheel as the data package gnn._kernels.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gnn", "gnn.*"]) + ["gnn._kernels"],
    package_dir={"gnn._kernels": "kernels"},
)
