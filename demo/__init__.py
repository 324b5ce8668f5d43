"""The CPU demo of mmda_vpt: pre-train a small ViT, transfer it with DA-VPT, draw pictures.

Run ``python demo/run_demo.py`` from the repository root (``make demo`` does).
"""
