"""Unit tests: pytest puts this directory on sys.path, so tests import shared helpers such as httptest from it."""
