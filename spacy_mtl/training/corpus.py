"""`spacy_mtl.MultiCorpus.v1`: several DocBin corpora, each annotating some
tasks, mixed into one training stream."""
import logging
import random
from itertools import chain
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import numpy
from spacy.attrs import DEP, HEAD, SENT_START
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Model

from ..compat import msgpack_decoders_looked_up_once
from ..names import CHUNKS_KEY, CORPUS_KEY, ENCODER_DROPOUT_KEY, RELATIONS_KEY, SCORED_BY_KEY, SLOTS_KEY

# What `tasks` may name, and how a doc's annotation of each is removed.
TASKS = ("tag", "pos", "chunk", "dep", "ents", "relations", "slots", "intent")

logger = logging.getLogger(__name__)


@registry.readers("spacy_mtl.MultiCorpus.v1")
def create_multi_corpus(
    corpora: Dict[str, Dict],
    alpha: float = 1.0,
    epoch_size: Optional[int] = None,
    shuffle: bool = True,
    seed: int = 0,
    max_length: int = 0,
    limit: int = 0,
    group_words: int = 0,
    sort_by_length: bool = False,
    gold_tokens: bool = False,
    predict_scored_only: bool = False,
) -> "MultiCorpus":
    """corpora: name -> {"path": a .spacy file or folder, "tasks": the tasks
        it annotates (optional; annotation of any other task is removed, so
        it counts as missing, never as negative), "weight": a factor on its
        share (optional, default 1), "encoder_dropout": the dropout rate of
        its docs inside a `spacy_mtl.DocDropoutTransformerModel.v1` encoder
        (optional; default: the encoder's own)}.
    alpha: corpus i is drawn in proportion to weight_i * n_i ** alpha (1 = in
        proportion to its size, 0 = uniformly).
    epoch_size: docs drawn per epoch (default: all corpora's sizes summed).
    shuffle: False yields every doc of every corpus once, in order (for dev).
    seed: fixes the draw; pass ${system.seed} to draw anew for each seed.
    group_words: 0 mixes the docs of all corpora; N > 0 yields runs of about
        N words from one corpus at a time, in random order (with a batch size
        of N words, most batches then come from one corpus).
    sort_by_length: with shuffle = false, yield the docs shortest first.
        Evaluation then batches docs of similar length, which the transformer
        pads less: the same predictions in less time.
    gold_tokens: the docs keep the corpus' own tokens instead of those of the
        pipeline's tokenizer. On a dev corpus, the scores in training are then
        those of the gold tokenization, as scripts/evaluate.py gives them.
    predict_scored_only: with shuffle = false, each spacy-mtl component
        annotates only the docs that hold its gold: on a dev corpus, the same
        scores, without predicting tasks on docs no score counts (in a mixed
        dev set, relations on EWT's sentences, say).
    Train with `max_epochs = -1` so that each epoch draws anew.
    """
    return MultiCorpus(
        corpora, alpha=alpha, epoch_size=epoch_size, shuffle=shuffle, seed=seed,
        max_length=max_length, limit=limit, group_words=group_words, sort_by_length=sort_by_length,
        gold_tokens=gold_tokens, predict_scored_only=predict_scored_only,
    )


class MultiCorpus:
    def __init__(
        self,
        corpora: Dict[str, Dict],
        *,
        alpha: float = 1.0,
        epoch_size: Optional[int] = None,
        shuffle: bool = True,
        seed: int = 0,
        max_length: int = 0,
        limit: int = 0,
        group_words: int = 0,
        sort_by_length: bool = False,
        gold_tokens: bool = False,
        predict_scored_only: bool = False,
    ):
        if not corpora:
            raise ValueError("MultiCorpus needs at least one corpus")
        if sort_by_length and shuffle:
            raise ValueError("MultiCorpus: sort_by_length orders the docs of a dev corpus; set shuffle = false with it")
        if predict_scored_only and shuffle:
            raise ValueError("MultiCorpus: predict_scored_only is for a dev corpus; set shuffle = false with it")
        for name, spec in corpora.items():
            if "path" not in spec:
                raise ValueError(f"MultiCorpus corpus '{name}' has no 'path'")
            unknown = set(spec.get("tasks") or []) - set(TASKS)
            if unknown:
                raise ValueError(f"MultiCorpus corpus '{name}': unknown tasks {sorted(unknown)}; known: {TASKS}")
            weight = spec.get("weight", 1.0)
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"MultiCorpus corpus '{name}': weight must be a number >= 0, got {weight!r}")
            encoder_dropout = spec.get("encoder_dropout")
            if encoder_dropout is not None and not (isinstance(encoder_dropout, (int, float)) and 0 <= encoder_dropout < 1):
                raise ValueError(
                    f"MultiCorpus corpus '{name}': encoder_dropout must be a number in [0, 1), got {encoder_dropout!r}"
                )
        self.corpora = corpora
        self.alpha = alpha
        self.epoch_size = epoch_size
        self.shuffle = shuffle
        self.random = random.Random(seed)
        self.max_length = max_length
        self.limit = limit
        self.group_words = group_words
        self.sort_by_length = sort_by_length
        self.gold_tokens = gold_tokens
        self.predict_scored_only = predict_scored_only
        self._examples: Optional[Dict[str, List[Example]]] = None
        self._queues: Dict[str, List[Example]] = {}

    def __call__(self, nlp: Language) -> Iterator[Example]:
        if not self.shuffle:
            yield from self.every_example(nlp)
            return
        examples = self._load(nlp)
        counts = self.draw_counts({name: len(exs) for name, exs in examples.items()})
        drawn = {name: self._draw(name, count) for name, count in counts.items()}
        if self.group_words > 0:
            runs = [run for egs in drawn.values() for run in runs_of_words(egs, self.group_words)]
            self.random.shuffle(runs)
            yield from (eg for run in runs for eg in run)
        else:
            mixed = [eg for egs in drawn.values() for eg in egs]
            self.random.shuffle(mixed)
            yield from mixed

    def every_example(self, nlp: Language) -> Iterator[Example]:
        """Every doc of every corpus once, in order, or shortest first."""
        examples = chain.from_iterable(self._load(nlp).values())
        if self.predict_scored_only:
            examples = list(examples)
            mark_scoring_components(nlp, examples)
        if self.sort_by_length:
            return iter(sorted(examples, key=lambda eg: len(eg.predicted)))
        return examples

    def draw_counts(self, sizes: Dict[str, int]) -> Dict[str, int]:
        """Docs per corpus in one epoch: weight_i * n_i ** alpha shares of the
        epoch size."""
        weights = {
            name: self.corpora[name].get("weight", 1.0) * size ** self.alpha if size else 0.0
            for name, size in sizes.items()
        }
        total = sum(weights.values())
        epoch_size = self.epoch_size or sum(sizes.values())
        return {name: round(epoch_size * weight / total) for name, weight in weights.items()}

    def _draw(self, name: str, count: int) -> List[Example]:
        """The next `count` docs of a corpus, each pass over it in a new order,
        so every doc is seen before any is seen twice."""
        drawn: List[Example] = []
        while len(drawn) < count:
            if not self._queues.get(name):
                queue = list(self._examples[name])
                self.random.shuffle(queue)
                self._queues[name] = queue
            take = min(count - len(drawn), len(self._queues[name]))
            drawn.extend(self._queues[name][:take])
            self._queues[name] = self._queues[name][take:]
        return drawn

    def _load(self, nlp: Language) -> Dict[str, List[Example]]:
        if self._examples is None:
            self._examples = {}
            for name, spec in self.corpora.items():
                path = Path(spec["path"])
                if not path.exists():
                    raise ValueError(f"MultiCorpus corpus '{name}': {path} not found")
                corpus = Corpus(path, max_length=self.max_length, limit=self.limit)
                with msgpack_decoders_looked_up_once():
                    examples = list(corpus(nlp))
                if not examples:
                    raise ValueError(f"MultiCorpus corpus '{name}': no docs in {path}")
                if self.gold_tokens:
                    examples = [Example(gold_tokenized(eg.reference), eg.reference) for eg in examples]
                tasks = spec.get("tasks")
                if tasks is not None:
                    for eg in examples:
                        remove_annotation(eg, set(TASKS) - set(tasks))
                for eg in examples:
                    eg.reference.user_data[CORPUS_KEY] = name
                if spec.get("encoder_dropout") is not None:
                    _warn_without_doc_dropout(nlp, name)
                    for eg in examples:
                        eg.predicted.user_data[ENCODER_DROPOUT_KEY] = float(spec["encoder_dropout"])
                self._examples[name] = examples
        return self._examples


def gold_tokenized(reference: Doc, vocab: Optional[Vocab] = None) -> Doc:
    """An unannotated doc with the reference's words and spaces."""
    words = [t.text for t in reference]
    return Doc(vocab or reference.vocab, words=words, spaces=[bool(t.whitespace_) for t in reference])


def runs_of_words(examples: List[Example], n_words: int) -> List[List[Example]]:
    """Consecutive examples cut into runs of at least n_words words (the last
    run may be shorter)."""
    runs: List[List[Example]] = [[]]
    size = 0
    for eg in examples:
        if size >= n_words:
            runs.append([])
            size = 0
        runs[-1].append(eg)
        size += len(eg.reference)
    return [run for run in runs if run]


def _warn_without_doc_dropout(nlp: Language, corpus: str) -> None:
    # A component's `model` may be a flag (True/False) instead of a Model.
    models = [pipe.model for _, pipe in nlp.pipeline if isinstance(getattr(pipe, "model", None), Model)]
    if not any(model.attrs.get("doc_dropout") for model in models):
        logger.warning(
            "MultiCorpus corpus '%s' sets encoder_dropout, but no component's model is a "
            "spacy_mtl.DocDropoutTransformerModel.v1: the setting has no effect",
            corpus,
        )


def remove_annotation(eg: Example, tasks: Sequence[str]) -> None:
    """Make the reference of an example unannotated for the given tasks."""
    ref = eg.reference
    for task in tasks:
        if task == "tag":
            for token in ref:
                token.tag_ = ""
        elif task == "pos":
            for token in ref:
                token.pos_ = ""
        elif task == "dep":
            _remove_trees(ref)
        elif task == "chunk":
            ref.spans.pop(CHUNKS_KEY, None)
        elif task == "slots":
            ref.spans.pop(SLOTS_KEY, None)
        elif task == "intent":
            ref.cats = {}
        elif task == "ents":
            ref.set_ents([], default="missing")
        elif task == "relations":
            ref.user_data.pop(RELATIONS_KEY, None)


def mark_scoring_components(nlp: Language, examples: Iterable[Example]) -> None:
    """Mark each predicted doc with the spacy-mtl components whose gold its
    reference holds: the others leave it unannotated (SCORED_BY_KEY)."""
    components = [(name, pipe) for name, pipe in nlp.pipeline if hasattr(pipe, "has_gold")]
    for eg in examples:
        eg.predicted.user_data[SCORED_BY_KEY] = [name for name, pipe in components if pipe.has_gold(eg.reference)]


def _remove_trees(doc: Doc) -> None:
    """No heads and labels, sentence boundaries kept."""
    if doc.has_annotation("DEP"):
        sent_starts = doc.to_array([SENT_START])
        doc.from_array([HEAD, DEP], numpy.zeros((len(doc), 2), dtype="uint64"))
        doc.from_array([SENT_START], sent_starts)
