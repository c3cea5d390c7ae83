"""A tiny causal LM built locally for tests: a BPE tokenizer trained with ``tokenizers`` on a
small corpus, and a random-init Llama config of about 0.1M parameters, saved and reloaded
through the real ``from_pretrained`` path. No hub access."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# ChatML with no tool support: exercises the documented fallback tool format.
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_TEXT = (
    "the cat dog sat on a mat and ran to big small red blue green house tree car road city name age "
    "is was of in it he she they we you hello world yes no json true false null paris london tokyo "
    "alice bob carol thirty forty twenty call function weather tool answer question what where when"
)
WORDS = _TEXT.split(" ")


def corpus(n: int = 400) -> list[str]:
    rng = random.Random(0)
    lines = []
    for _ in range(n):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))))
    # Punctuation and JSON characters so constrained decoding has tokens to use.
    lines += ['{"name": "alice", "age": 30, "ok": true}', "[1, 2, 3] {} : , . ? ! <tool_call> </tool_call>"]
    lines += ["0 1 2 3 4 5 6 7 8 9 - _ ' \" \\ / + = ( ) @ # $ % & * ;"]
    return lines


def build_tiny_model(out: Path, *, seed: int = 0) -> Path:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    fast.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out
