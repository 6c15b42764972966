"""Synthetic data: a synthetic Aff-Wild2 in the real layout (``dataset``) with procedurally drawn face-like
images whose features follow the labels (``faces``), for the demo and the tests.

May import: ``ensemble``'s core only.
"""
