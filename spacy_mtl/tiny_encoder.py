"""A tiny random BERT (2 layers, width 32) with a WordPiece vocabulary trained
on given sentences: the real spacy-transformers code paths at almost no cost,
for the tests and for measuring what runs beside the encoder."""
from pathlib import Path
from typing import List


def build_tiny_bert(
    path: Path, sentences: List[str], vocab_size: int = 400, min_frequency: int = 1, max_length: int = 128
) -> Path:
    """Save the model and its tokenizer in `path`, where `name` in a
    transformer config loads them."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(sentences, vocab_size=vocab_size, min_frequency=min_frequency)
    wordpiece.save_model(str(path))
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True, model_max_length=max_length)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_length,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(path))
    return path
