# FGVC in VPT's split format (mmda_vpt's FGVCDataset): train.json / val.json / test.json.
# Training: random resized crop 224 and horizontal flip (the paper); testing: resize the short
# side to 256 and center-crop 224 (VPT). Each config sets data_root, num_classes and image_dir.
# VPT trains the final FGVC runs on `train` and reports `test`; `val` is for tuning.
# As the authors' Dataset/transforms.py (the paper is silent): decoded by PIL without the EXIF
# rotation (their Image.open(...).convert('RGB')) and resized by PIL, bicubic.
load = dict(type='LoadImageFromFile', imdecode_backend='pillow',
            color_type='color_ignore_orientation')
train_pipeline = [
    load,
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    load,
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    # The DA-VPT configs replace it with the authors' class-balanced batches:
    #   sampler=dict(type='ClassBalancedSampler', mode='class_slots', batch_size=32,
    #                samples_per_class=2)
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
