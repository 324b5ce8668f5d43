"""The paper as data: its tables, the authors' settings, the config writer and the results tables.

``tools/gen_configs.py`` writes ``configs/da_vpt`` and ``configs/baselines`` (and the
segmentation tasks' head bases) from these tables with :func:`write_all`; ``--check`` runs
:func:`check`. ``tools/aggregate_results.py`` reads finished runs with :func:`collect` and prints
:func:`format_tables` of :func:`summarize`.
"""
from .aggregate import (AUTHORS_LABEL, ConfigInfo, Row, RunResult, collect, config_index,
                        find_runs, format_tables, mean_std, read_run, summarize)
from .authors import (AUTHORS_CSV, L2_PROMPT_FILES, MASK_FILES, PARAMS_DEFAULTS, PARSER_DROPPED,
                      Calibration, calibration_bias_parts, calibrations, read_authors_table)
from .metafile import MODEL_INDEX, render_metafiles
from .names import ALIASES, cls_config_path, seg_config_path, seg_heads_base_path
from .reference import REFERENCE_FGVC, REFERENCE_GROUPS, REFERENCE_SEG
from .tables import (AUTHORS_SUFFIX, BACKBONES, CLS_METHODS, DAVPT_METHODS, FAMILIES,
                     FGVC_TASKS, SEG_BACKBONE, SEG_METHODS, SEG_TASKS, TASKS, VTAB_GROUPS,
                     VTAB_TASKS, Guidance, Method, PretrainedBackbone, SegTask, Task)
from .writer import GENERATED_DIRS, check, render_all, write_all

__all__ = [
    'ALIASES', 'AUTHORS_CSV', 'AUTHORS_LABEL', 'AUTHORS_SUFFIX', 'BACKBONES',
    'CLS_METHODS', 'Calibration', 'ConfigInfo', 'DAVPT_METHODS', 'FAMILIES', 'FGVC_TASKS',
    'GENERATED_DIRS', 'Guidance', 'L2_PROMPT_FILES', 'MASK_FILES', 'MODEL_INDEX', 'Method',
    'PARAMS_DEFAULTS', 'PARSER_DROPPED', 'PretrainedBackbone', 'REFERENCE_FGVC',
    'REFERENCE_GROUPS', 'REFERENCE_SEG', 'Row', 'RunResult', 'SEG_BACKBONE', 'SEG_METHODS',
    'SEG_TASKS', 'SegTask', 'TASKS', 'Task', 'VTAB_GROUPS', 'VTAB_TASKS',
    'calibration_bias_parts', 'calibrations', 'check', 'cls_config_path', 'collect', 'config_index', 'find_runs',
    'format_tables', 'mean_std', 'read_authors_table', 'read_run', 'render_all',
    'render_metafiles', 'seg_config_path', 'seg_heads_base_path', 'summarize', 'write_all'
]
