# FGVC in VPT's split format (mmda_vpt's FGVCDataset): train.json / val.json / test.json.
# Training: random resized crop 224 and horizontal flip (the paper); testing: resize the short
# side to 256 and center-crop 224 (VPT). Each config sets data_root, num_classes and image_dir.
# VPT trains the final FGVC runs on `train` and reports `test`; `val` is for tuning.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    # The DA-VPT configs replace it with the authors' class-balanced sampling:
    #   sampler=dict(type='ClassBalancedSampler', samples_per_class=2)
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='FGVCDataset', split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FGVCDataset', split='val', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='FGVCDataset', split='test', pipeline=test_pipeline))

val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
