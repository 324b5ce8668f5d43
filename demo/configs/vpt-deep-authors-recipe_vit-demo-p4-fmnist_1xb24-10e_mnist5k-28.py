# VPT-Deep under the DA-VPT authors' recipe (./_base_/authors_recipe_mnist5k.py): 5 prompts in
# every layer of the frozen Fashion-MNIST ViT, no metric guidance. The learning rate and weight
# decay are chosen on the validation split (`python -m demo.run_demo --recipe`).
_base_ = './_base_/authors_recipe_mnist5k.py'

model = dict(backbone=dict(num_prompts=5, guided_layers=()))
optim_wrapper = dict(optimizer=dict(lr=0.1))
