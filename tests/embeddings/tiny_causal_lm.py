"""A tiny randomly initialised causal LM and tokenizer, built offline into a folder (no download)."""

from __future__ import annotations

from pathlib import Path

# Byte-level BPE covers any text, so every test sentence gets its own tokens (no [UNK] collapse).
TRAINING_SENTENCES = [
    "Hello there, how are you today?",
    "The cat sat on the mat and looked at the dog.",
    "Goodbye, see you tomorrow morning.",
    "A response embedding is the mean of the last hidden layer.",
    "Paris is the capital of France.",
]
EOS = "</s>"


def build_tiny_causal_lm(folder: Path, *, max_position_embeddings: int = 128, seed: int = 0) -> Path:
    """Save a 2-layer Llama (hidden size 32) and a fast tokenizer with EOS but no pad token to folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(TRAINING_SENTENCES, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS)
    config = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max_position_embeddings,
        eos_token_id=fast.eos_token_id,
        bos_token_id=fast.eos_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def reference_vector(folder: Path, text: str, max_length: int | None = None) -> list[float]:
    """The paper's embedding computed with transformers directly: text alone, EOS, last layer mean, L2."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = ids[:max_length] if max_length else ids
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[-1][0]
    mean = hidden.mean(dim=0)
    return (mean / mean.norm()).tolist()  # type: ignore[no-any-return]
