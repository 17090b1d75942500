"""Shared pytest setup: make the lab tool importable and check the collection is on the path."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "lab"))


def pytest_report_header(config):
    paths = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    return f"ANSIBLE_COLLECTIONS_PATH={paths or '(unset: run through make, or the plugin tests cannot import)'}"
