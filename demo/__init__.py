"""The CPU demo of mmda_vpt: pre-train a small ViT, transfer it with DA-VPT, draw pictures.

Run ``python -m demo.run_demo`` from the repository root (``make demo`` does).
"""
