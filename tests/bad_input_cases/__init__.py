"""The bad-input corpus: each module here defines ``CASES`` (see tests/test_bad_input_corpus.py)."""
