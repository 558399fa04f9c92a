"""Reformer for Hugging Face transformers: LSH and local attention, reversible layers, any length."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from .configuration import ReformerConfig
from .conversion import ConversionError, convert_from_transformers
from .heads import (
    ReformerForMaskedLM,
    ReformerForQuestionAnswering,
    ReformerForSequenceClassification,
    ReformerForTokenClassification,
)
from .modeling import ReformerForCausalLM, ReformerModel, ReformerPreTrainedModel
from .pipelines import ExtractiveQuestionAnsweringPipeline
from .sentencepiece_training import train_sentencepiece_tokenizer
from .collators import DataCollatorForMaskedLM, DataCollatorForSequenceClassification, DataCollatorForTokenClassification
from .task_data import group_into_sequences, split_documents
from .tokenization import ReformerByteTokenizer

__version__ = "0.1.0"

AutoConfig.register(ReformerConfig.model_type, ReformerConfig)
# transformers' own ReformerConfig has the same class name, which the Auto mappings look up by name,
# so registration needs exist_ok=True. The mappings key registered classes by the class object, so
# transformers' Reformer keeps resolving to its own models.
AutoModel.register(ReformerConfig, ReformerModel, exist_ok=True)
AutoModelForCausalLM.register(ReformerConfig, ReformerForCausalLM, exist_ok=True)
AutoModelForMaskedLM.register(ReformerConfig, ReformerForMaskedLM, exist_ok=True)
AutoModelForSequenceClassification.register(ReformerConfig, ReformerForSequenceClassification, exist_ok=True)
AutoModelForQuestionAnswering.register(ReformerConfig, ReformerForQuestionAnswering, exist_ok=True)
AutoModelForTokenClassification.register(ReformerConfig, ReformerForTokenClassification, exist_ok=True)
# Registration lets AutoTokenizer resolve the tokenizer_class field of a saved tokenizer_config.json.
# It needs exist_ok=True for the same class-name reason as the models.
AutoTokenizer.register(ReformerConfig, ReformerByteTokenizer, exist_ok=True)

__all__ = [
    "ConversionError",
    "DataCollatorForMaskedLM",
    "DataCollatorForSequenceClassification",
    "DataCollatorForTokenClassification",
    "ExtractiveQuestionAnsweringPipeline",
    "convert_from_transformers",
    "ReformerByteTokenizer",
    "ReformerConfig",
    "ReformerForCausalLM",
    "ReformerForMaskedLM",
    "ReformerForQuestionAnswering",
    "ReformerForSequenceClassification",
    "ReformerForTokenClassification",
    "ReformerModel",
    "ReformerPreTrainedModel",
    "__version__",
    "group_into_sequences",
    "split_documents",
    "train_sentencepiece_tokenizer",
]
