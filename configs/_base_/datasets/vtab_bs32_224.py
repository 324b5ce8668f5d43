# VTAB-1k in the common file-list format (mmda_vpt's VTABDataset). Images are resized to
# 224x224 with no augmentation (the paper, following VTAB and VPT), decoded and resized by PIL,
# bicubic, without the EXIF rotation (the authors' Dataset code; the paper is silent). As VPT,
# the final runs train on train800val200 and report test; to tune hyperparameters train on
# train800 and evaluate val200 (--cfg-options train_dataloader.dataset.split=train800). Each
# config sets data_root and num_classes. The authors' code resizes the short side and
# centre-crops instead: vtab_bs32_224_resize-crop.py.
load = dict(type='LoadImageFromFile', imdecode_backend='pillow',
            color_type='color_ignore_orientation')
train_pipeline = [
    load,
    dict(type='Resize', scale=(224, 224), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    # The DA-VPT configs replace it with the authors' class-balanced batches:
    #   sampler=dict(type='ClassBalancedSampler', mode='class_slots', batch_size=32,
    #                samples_per_class=2)
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VTABDataset', split='train800val200', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VTABDataset', split='val200', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VTABDataset', split='test', pipeline=test_pipeline))

val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
