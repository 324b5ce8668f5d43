"""What users call from Python: build a runner from a config, export a trained model, attention
maps, load a trained model."""
from .runner import build_runner, library_of, merge_train_args, register_library

__all__ = ['build_runner', 'library_of', 'merge_train_args', 'register_library']
