# Runtime of the classification configs: mmpretrain's, plus the mmda_vpt components.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['mmda_vpt'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    # Full checkpoints of ViT-B are ~350 MB: keep the last one only. Add
    # dict(type='TrainableCheckpointHook') to custom_hooks to save only the trained parameters
    # (they name the base weights of init_cfg, which every loader then reads under them).
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1, save_last=True))

# The paper reports the mean of 3 seeds: run with --cfg-options randomness.seed=0, 1 and 2.
randomness = dict(seed=0, deterministic=False)
