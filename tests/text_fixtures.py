"""A tiny RoBERTa-style tokenizer and model config, built on the fly (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

WORDS = (
    "a cat sat on the mat the dog ran far happy sad funny joke not good bad very so we i you "
    "it is was day night"
).split()


def make_text_model(folder: Path, layers: int = 6, hidden: int = 32, with_weights: bool = False) -> Path:
    """A word-level tokenizer with RoBERTa's special tokens and a small RoBERTa config in `folder`
    (plus random weights saved as a checkpoint when `with_weights`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, RobertaConfig, RobertaModel

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {tok: i for i, tok in enumerate(specials + list(dict.fromkeys(WORDS)))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )
    tokenizer.save_pretrained(folder)
    config = RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=300,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        type_vocab_size=1,
    )
    if with_weights:
        RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    else:
        config.save_pretrained(folder)
    return folder
