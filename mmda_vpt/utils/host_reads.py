"""Moved to ``benchmarks/host_reads.py`` of the repository (``benchmarks.host_reads``)."""
from ._moved import moved_error

raise moved_error(__name__)
