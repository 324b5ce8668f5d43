"""What users call from Python: build and run a runner from a config, load a trained model,
export it, and its attention maps."""
from .attention import attention_maps, draw_attention_maps
from .cli import add_common_args, build_test_parser, build_train_parser
from .export import check_inputs, export_checkpoint
from .model import build_model, load_checkpoint_strictly, load_model, without_init_cfg
from .runner import (build_runner, enable_amp, library_of, merge_test_args, merge_train_args,
                     register_library, run_test, run_train, set_work_dir)

__all__ = [
    'add_common_args', 'attention_maps', 'build_model', 'build_runner', 'build_test_parser',
    'build_train_parser', 'check_inputs', 'draw_attention_maps', 'enable_amp',
    'export_checkpoint', 'library_of', 'load_checkpoint_strictly', 'load_model',
    'merge_test_args', 'merge_train_args', 'register_library', 'run_test', 'run_train',
    'set_work_dir', 'without_init_cfg'
]
