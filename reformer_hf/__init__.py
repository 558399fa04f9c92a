"""Reformer for Hugging Face transformers: LSH and local attention, reversible layers, any length."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration import ReformerConfig
from .modeling import ReformerForCausalLM, ReformerModel, ReformerPreTrainedModel

__version__ = "0.1.0"

AutoConfig.register(ReformerConfig.model_type, ReformerConfig)
# transformers' own ReformerConfig has the same class name, which the Auto mappings look up by name,
# so registration needs exist_ok=True. The mappings key registered classes by the class object, so
# transformers' Reformer keeps resolving to its own models.
AutoModel.register(ReformerConfig, ReformerModel, exist_ok=True)
AutoModelForCausalLM.register(ReformerConfig, ReformerForCausalLM, exist_ok=True)

__all__ = ["ReformerConfig", "ReformerForCausalLM", "ReformerModel", "ReformerPreTrainedModel", "__version__"]
