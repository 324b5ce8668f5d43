"""Benchmarks of mmda_vpt and their helpers; part of the repository, not of the installed package.

Import them from the repository root (``benchmarks.host_reads``, ``benchmarks.class_clustering``);
``python benchmarks/step_cost.py`` runs the cost benchmark.
"""
