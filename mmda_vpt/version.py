"""The version of mmda_vpt."""
__version__ = '0.1.0'
