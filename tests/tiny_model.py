"""Small chat models built offline, for tests and benchmarks (no hub, no download).

A byte-level BPE tokenizer trained on a few KB of mixed English and Chinese,
wrapped as PreTrainedTokenizerFast with a ChatML template and <|im_end|> as
its end-of-turn token, and a Llama model with random weights from a fixed
seed. The weights are drawn wide (initializer_range 0.5) so that greedy
decoding wanders over the vocabulary, multi-byte characters split across
tokens included, instead of repeating one token: that is what exercises
streaming and counting.
"""

from __future__ import annotations

from pathlib import Path

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "Hello world. The quick brown fox jumps over the lazy dog. ",
    "Every call's tokens and money land in a local ledger; count them exactly. ",
    "Local models run on your own GPU, or on the CPU when there is none. ",
    "你好，世界。今天天气很好，我们去公园散步吧。",
    "数一数每一个词元，记下每一分钱。本地模型也要精确计数。",
    "Mixed text: 模型 model, 词元 token, 账本 ledger. 123 456 7890!? ",
]


def build(
    folder: Path,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab: int = 400,
    context: int = 512,
    seed: int = 0,
    never_stop: bool = False,
) -> Path:
    """Write a tokenizer and a random Llama model into `folder`; return it.

    `never_stop` zeroes the end-of-turn token's (tied) embedding, so its logit
    is 0 and greedy decoding practically never picks it: benchmarks then time
    exactly the tokens they ask for.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML,
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(heads // 2, 1),
        max_position_embeddings=context,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=0.5,
    )
    model = LlamaForCausalLM(config)
    if never_stop:
        with torch.no_grad():
            model.get_input_embeddings().weight[tokenizer.eos_token_id].zero_()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder
