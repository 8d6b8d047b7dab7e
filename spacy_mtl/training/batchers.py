"""`spacy_mtl.batch_by_padded.v1`: spaCy's padded-size batching with a cap
on the number of docs per batch; `spacy_mtl.wordpiece_length.v1`: a doc's
length as the transformer pads it, to batch by."""
import math
from functools import partial
from typing import Callable, Dict, Iterable, Iterator, List, Optional

from spacy.training import Example
from spacy.training.batchers import BatcherT, ItemT, Sizing, minibatch_by_padded_size
from spacy.util import registry


@registry.batchers("spacy_mtl.batch_by_padded.v1")
def configure_batch_by_padded(
    *,
    size: Sizing,
    buffer: int = 256,
    max_sequences: int = 0,
    discard_oversize: bool = False,
    get_length: Optional[Callable[[ItemT], int]] = None,
) -> BatcherT:
    """Batches of at most `size` padded tokens (the longest doc's length
    times the number of docs), as `spacy.batch_by_padded.v1`, and of at most
    `max_sequences` docs (0: no cap). Without the cap, a corpus of short
    docs (e.g. SNIPS utterances) comes in batches of hundreds and its tasks get
    far fewer updates per word than the others.
    """
    if not isinstance(max_sequences, int) or max_sequences < 0:
        raise ValueError(f"batch_by_padded: max_sequences must be an int >= 0, got {max_sequences!r}")
    optionals = {"get_length": get_length} if get_length is not None else {}
    return partial(
        batch_by_padded, size=size, buffer=buffer, max_sequences=max_sequences,
        discard_oversize=discard_oversize, **optionals,
    )


def batch_by_padded(
    seqs: Iterable[ItemT],
    size: Sizing,
    buffer: int = 256,
    max_sequences: int = 0,
    discard_oversize: bool = False,
    get_length: Callable = len,
) -> Iterator[List[ItemT]]:
    batches = minibatch_by_padded_size(
        seqs, size=size, buffer=buffer, discard_oversize=discard_oversize, get_length=get_length
    )
    for batch in batches:
        yield from split_evenly(batch, max_sequences)


def split_evenly(batch: List[ItemT], max_sequences: int) -> Iterator[List[ItemT]]:
    """The batch in the fewest parts of at most max_sequences docs, of sizes
    that differ by at most one."""
    if not max_sequences or len(batch) <= max_sequences:
        yield batch
        return
    n_parts = math.ceil(len(batch) / max_sequences)
    bounds = [round(i * len(batch) / n_parts) for i in range(n_parts + 1)]
    for start, end in zip(bounds[:-1], bounds[1:]):
        yield batch[start:end]


@registry.misc("spacy_mtl.wordpiece_length.v1")
def create_wordpiece_length(name: str, tokenizer_config: dict = {}) -> Callable[[ItemT], int]:
    """A doc's length (or an Example's predicted doc's) in the word pieces of
    the transformer's tokenizer, special tokens included: the length to
    which the transformer pads the batch that holds it. As the `get_length`
    of a padded-size batcher, it batches docs of similar word-piece length
    together. By spaCy tokens, docs of the same length differ widely in word
    pieces (web text, names, and each short doc's two special tokens), and
    each batch is padded to its longest in word pieces.

    name and tokenizer_config: as the transformer's model has them. Repeat
    its `name` block: spaCy resolves [training] without [components], so a
    reference to it fails.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **tokenizer_config)
    except (OSError, ValueError) as err:
        raise ValueError(f"wordpiece_length: cannot load the tokenizer of '{name}': {err}") from err
    # A corpus' docs come back every epoch: each text is tokenized once.
    lengths: Dict[str, int] = {}

    def wordpiece_length(item: ItemT) -> int:
        text = (item.predicted if isinstance(item, Example) else item).text
        if text not in lengths:
            lengths[text] = len(tokenizer(text, verbose=False)["input_ids"])
        return lengths[text]

    return wordpiece_length
