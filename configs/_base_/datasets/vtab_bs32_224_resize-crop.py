# VTAB-1k as the authors' code reads it (their Dataset/transforms.py, get_vtab_transforms):
# every split resizes the short side to 224 (PIL, bicubic) and centre-crops 224x224, no
# augmentation. The paper says "directly resize to 224x224" (vtab_bs32_224.py, the paper rows);
# the authors'-code rows use this file.
_base_ = './vtab_bs32_224.py'

load = dict(type='LoadImageFromFile', imdecode_backend='pillow',
            color_type='color_ignore_orientation')
pipeline = [
    load,
    dict(type='ResizeEdge', scale=224, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=pipeline))
val_dataloader = dict(dataset=dict(pipeline=pipeline))
test_dataloader = dict(dataset=dict(pipeline=pipeline))
