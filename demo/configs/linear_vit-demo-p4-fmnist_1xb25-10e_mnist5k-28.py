# Linear probe: the Fashion-MNIST ViT frozen, no prompts; only the linear head trains.
# Learning rate chosen on the validation split (`python -m demo.run_demo --tune`).
_base_ = './_base_/transfer_mnist5k.py'

model = dict(backbone=dict(num_prompts=0, guided_layers=()))
optim_wrapper = dict(optimizer=dict(lr=1.0))
