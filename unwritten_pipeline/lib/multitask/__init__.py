"""The LoRA multi-task model: one encoder, eight heads, trained on the training splits."""
