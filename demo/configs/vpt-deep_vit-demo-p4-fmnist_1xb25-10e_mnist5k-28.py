# VPT-Deep: 5 prompts in every layer of the frozen Fashion-MNIST ViT, no metric guidance.
# Learning rate chosen on the validation split (`python -m demo.run_demo --tune`).
_base_ = './_base_/transfer_mnist5k.py'

model = dict(backbone=dict(num_prompts=5, guided_layers=()))
optim_wrapper = dict(optimizer=dict(lr=0.1))
# The CLS token's and prompts' attention on 4 validation (else
# test) images, in TensorBoard.
custom_hooks = [dict(type='PromptVisualizationHook', num_images=4)]
