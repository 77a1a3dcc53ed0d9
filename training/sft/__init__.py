"""Supervised fine-tuning with trl's SFTTrainer: full or LoRA, per language-family cluster,
then merged with training.merge; distributed through accelerate."""
