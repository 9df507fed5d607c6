"""Helpers for the ICD-10 fine-tuning course.

One module per concern; the notebooks call these functions so the logic is
tested in ``tests/`` and the notebook cells stay short.
"""
