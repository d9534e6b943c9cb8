"""A tiny random Llama and a BPE tokenizer with a chat template and FIM tokens, saved like a user's model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from redline.records import Feedback, Generation, Insertion, Message, ModelRef, Prompt

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>",
            "<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def mul(a, b):\n    return a * b\n",
    "The following is feedback from your unsuccessful earlier attempt: error test failed",
    "Correctly solve the original question. The reviewer changed it to:",
    "for i in range(10):\n    print(i)\n",
    "import os\nimport sys\nclass Foo:\n    pass\n",
    "# comment // note -- hint warning info",
] * 20


def build_tiny_model(path: Path, *, vocab_size: int = 400, hidden: int = 64, layers: int = 2, seed: int = 0,
                     init_range: float = 0.2) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    bos = ("<s>", tok.token_to_id("<s>"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[bos])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=SPECIALS[4:])
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=512, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                      pad_token_id=fast.pad_token_id, tie_word_embeddings=False,
                      initializer_range=init_range)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model), local_files_only=True)


def raw_generation(i: int = 0, *, split: str = "train") -> Generation:
    return Generation(prompt_format="raw", prompt=Prompt(text=f"def f{i}(a, b):\n"),
                      completion=f"    return a + b + {i}\n", model=ModelRef("tiny"), split=split)


def chat_generation() -> Generation:
    return Generation(prompt_format="chat",
                      prompt=Prompt(messages=[Message("system", "Write Python."), Message("user", "add a and b")]),
                      completion="def add(a, b):\n    return a - b\n", model=ModelRef("tiny"))


def fim_generation() -> Generation:
    return Generation(prompt_format="fim", prompt=Prompt(prefix="import os\n\ndef add(a, b):\n    return ",
                                                         suffix="\n\nprint(add(1, 2))\n"),
                      completion="a - b", model=ModelRef("tiny"), insertion=Insertion(path="src/m.py"))


def failing(generation: Generation, message: str = "test failed: add(1, 2) returned -1, expected 3") -> list[Feedback]:
    return [Feedback(kind="test_failure", source="pytest", message=message, generation_id=generation.id)]
