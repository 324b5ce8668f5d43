# A tiny DA-VPT classifier for the tests of tools/tune.py: the 2-layer DAVPTViT of
# tests/toy_datasets.py (embed_dims 32, 4 prompts per layer, the last layer guided) with the
# metric-loss and class-to-prompt hooks, on scikit-learn's digits (16x16; train: digits 0-299,
# val: 300-449), AdamW like the paper's configs, 2 epochs of 10 iterations.
# Nothing in a training step draws random numbers besides the sampler's seeded shuffle, so a
# run repeated with the same seed gives the same weights.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['mmda_vpt', 'tests.toy_datasets'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DAVPTViT',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=16,
        patch_size=4,
        num_prompts=4,
        guided_layers=(-1, ),
        norm_cfg=dict(type='LN', eps=1e-6)),
    neck=None,
    head=dict(type='LinearClsHead', num_classes=10, in_channels=32,
              loss=dict(type='CrossEntropyLoss')))
data_preprocessor = dict(num_classes=10, mean=[127.5] * 3, std=[127.5] * 3, to_rgb=False)

pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=30,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='DigitsDataset', indices=(0, 300), pipeline=pipeline))
val_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DigitsDataset', indices=(300, 450), pipeline=pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=50,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='DigitsDataset', indices=(450, 600), pipeline=pipeline))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=1e-4))
param_scheduler = dict(type='CosineAnnealingLR', T_max=2, by_epoch=True)
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=5),
    dict(type='PromptMetricLossHook', beta=0.05, lam=0.05),
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=5),
                     checkpoint=dict(type='CheckpointHook', interval=1))
randomness = dict(seed=0, deterministic=False)
