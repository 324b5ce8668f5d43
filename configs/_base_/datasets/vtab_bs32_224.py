# VTAB-1k in the common file-list format (mmda_vpt's VTABDataset). Images are resized to
# 224x224 with no augmentation (the paper, following VTAB and VPT; bicubic, as the PEFT code
# that uses this format). As VPT, the final runs train on train800val200 and report test; to
# tune hyperparameters train on train800 and evaluate val200
# (--cfg-options train_dataloader.dataset.split=train800). Each config sets data_root and
# num_classes.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    # The DA-VPT configs replace it with the authors' class-balanced sampling:
    #   sampler=dict(type='ClassBalancedSampler', samples_per_class=2)
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
