"""The labels a spacy-mtl component initializes its heads with."""
import logging
from typing import Callable, Dict, Iterable, Optional, Set
from weakref import WeakKeyDictionary

from spacy.language import Language
from spacy.training import Corpus, Example
from spacy.util import minibatch, resolve_dot_names

logger = logging.getLogger(__name__)


# The labels each component of a pipeline being initialized reads from its
# streamed training corpus, collected in one pass for them all and handed
# out once: only label sets are kept, never the corpus' docs.
_streamed_labels: "WeakKeyDictionary[Language, Dict[str, Dict[str, Set[str]]]]" = WeakKeyDictionary()


def initial_labels(pipe, get_examples: Callable[[], Iterable[Example]], nlp: Optional[Language]) -> Dict[str, Set[str]]:
    """The labels a component initializes its heads with, by kind as in its
    label_data. spaCy initializes a pipeline trained with `max_epochs = -1`
    (a streamed corpus) from the first 100 training examples only: with
    several corpora mixed, a rare label, or one of a task's common ones, is
    easily missing from them, and its head could never predict it. When that
    corpus is a MultiCorpus or a spaCy Corpus, which end, the labels come
    from every doc of it instead (for the components of nlp's pipeline: one
    initialized on its own keeps the examples it is given)."""
    if nlp is not None and any(member is pipe for _, member in nlp.pipeline):
        if pipe.name not in _streamed_labels.get(nlp, {}):
            _streamed_labels[nlp] = _streamed_gold_labels(nlp)
        labels = _streamed_labels[nlp].pop(pipe.name, None)
        if labels is not None:
            return labels
    return pipe.gold_labels(eg.reference for eg in get_examples())


def _streamed_gold_labels(nlp: Language, batch_size: int = 1000) -> Dict[str, Dict[str, Set[str]]]:
    """Each labelled component's gold labels over every doc of nlp's streamed
    training corpus; empty where the config trains from no such corpus."""
    corpus = _resolve_streamed_train_corpus(nlp.config)
    if corpus is None:
        return {}
    pipes = [(name, pipe) for name, pipe in nlp.pipeline if hasattr(pipe, "gold_labels")]
    # A MultiCorpus yields every doc once with every_example; a spaCy Corpus
    # does when called.
    examples = corpus.every_example(nlp) if hasattr(corpus, "every_example") else corpus(nlp)
    labels = {name: pipe.gold_labels([]) for name, pipe in pipes}
    for batch in minibatch(examples, batch_size):
        references = [eg.reference for eg in batch]
        for name, pipe in pipes:
            for kind, found in pipe.gold_labels(references).items():
                labels[name][kind].update(found)
    return labels


def _resolve_streamed_train_corpus(config) -> Optional[Callable]:
    training = config.get("training", {})
    if training.get("max_epochs") != -1 or not isinstance(training.get("train_corpus"), str):
        return None
    try:
        (corpus,) = resolve_dot_names(config.interpolate(), [training["train_corpus"]])
    except (ValueError, KeyError):
        return None  # a config that cannot train as it is: keep spaCy's examples
    if not (isinstance(corpus, Corpus) or hasattr(corpus, "every_example")):
        return None  # a custom reader may never end
    logger.info("Labels from every doc of '%s', not only its first 100", training["train_corpus"])
    return corpus
