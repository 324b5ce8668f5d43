# A tiny DA-VPT classifier for tests/test_packaging: an installed mmda_vpt (the wheel in a fresh
# virtual environment) trains it from a folder outside the repository, reaching mmda_vpt only
# through the base's `custom_imports`, as a user's own config does. The toy classifier of
# tests/data/configs/toy_cls.py (copied beside this file; its images are written by
# tests.utils.write_toy_images) with a DAVPTViT, mmda_vpt's folder dataset and the DA-VPT hooks,
# for one epoch.
_base_ = './toy_cls.py'

model = dict(
    backbone=dict(type='DAVPTViT', num_prompts=2, guided_layers=(1, ), num_guided_prompts=2))
train_dataloader = dict(dataset=dict(type='ClassFolderDataset'))
val_dataloader = dict(dataset=dict(type='ClassFolderDataset'))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1)

custom_hooks = [
    dict(type='ClassPromptMappingHook', samples_per_class=2, first_update=1),
    dict(type='PromptMetricLossHook', beta=0.05, lam=0.05),
]
