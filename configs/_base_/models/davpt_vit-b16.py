# ImageClassifier with a frozen ViT-B/16 carrying DA-VPT prompts (mmda_vpt's DAVPTViT).
# The head reads the final CLS token after the final norm (out_type='cls_token',
# final_norm=True) for all three pre-trainings: it is what the supervised and MoCo v3 ViTs were
# trained to output, what MAE's own linear-probing protocol reads, what the class-to-prompt
# k-means clusters and what L_ML(p, x_cls) guides; and every converted checkpoint, MAE's
# included, holds that final norm (ln1), so it loads strictly. The DA-VPT configs of MAE set
# out_type='avg_prompts_patches' (the mean of the final-norm prompt and patch tokens, the
# authors' global pooling); they inherit davpt_vit-b16_xavier-stacked.py, this file with the
# authors' initializations.
# Images are normalized with ImageNet's mean and std, as VPT does for every backbone.
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=1000,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='DAVPTViT',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        final_norm=True,
        drop_rate=0.0,
        drop_path_rate=0.0,
        num_prompts=10,
        guided_layers=(10, 11),
        num_guided_prompts=10,
        prompt_dropout=0.0,
        prompt_init='uniform',
        bias_tune=None,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/vit-b16_in21k-augreg.pth')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))
