"""gnn.models: complete models built from gnn.nn (GPT) and the tokenizer the text example uses."""

from gnn.models.char_tokenizer import CharTokenizer
from gnn.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "CharTokenizer"]
