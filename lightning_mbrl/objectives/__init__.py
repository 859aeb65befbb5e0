"""Losses as pure functions: tensors or TensorDicts in, a TensorDict of named ``loss_*`` terms out."""
