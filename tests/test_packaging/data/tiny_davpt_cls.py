# A tiny DA-VPT classifier for tests/test_packaging: an installed mmda_vpt (the wheel in a fresh
# virtual environment) trains it from a folder outside the repository, reaching mmda_vpt only
# through `custom_imports`, as a user's own config does. A 2-layer ViT (embed_dims 32) on 16x16
# images of two classes; the test writes them under data/tiny_cls/{train,val}/<class>/*.png,
# relative to the working directory.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['mmda_vpt'], allow_failed_imports=False)

data_root = 'data/tiny_cls'
num_classes = 2

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=num_classes,
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5]),
    backbone=dict(
        type='DAVPTViT',
        arch=dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64),
        img_size=16,
        patch_size=4,
        num_prompts=2,
        guided_layers=(1, ),
        num_guided_prompts=2,
        norm_cfg=dict(type='LN', eps=1e-6)),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=32,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ClassFolderDataset', data_root=data_root, data_prefix='train', pipeline=pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ClassFolderDataset', data_root=data_root, data_prefix='val', pipeline=pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=2, first_update=1),
    dict(type='PromptMetricLossHook', beta=0.05, lam=0.05),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1))

randomness = dict(seed=0)
