"""Python actor modules for the tests of Python actors in pools (test_pyactors.py)."""
