"""distill-bench: train distillation defenses, attack them, expose gradient masking."""

__version__ = "0.1.0"
