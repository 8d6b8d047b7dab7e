"""`corpus_adversary`: an auxiliary training objective that pushes the shared
encoder towards features the corpora share (adversarial multi-task learning,
Liu et al. 2017). It predicts which corpus a training doc came from through a
gradient-reversal layer, so the encoder is trained to make that hard. It
annotates nothing: at inference it passes docs through, and removing it from
a trained pipeline changes no other output."""
from itertools import islice
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Union

import numpy
from spacy.language import Language
from spacy.training import Example, validate_examples, validate_get_examples
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from ..ml.adversary import OUTPUT_LAYER
from ..names import CORPUS_KEY
from .base import TRANSFORMER_LISTENER_CONFIG, AuxiliaryObjective

default_model_config = """
[model]
@architectures = "spacy_mtl.CorpusAdversary.v1"
hidden_width = 64
dropout = 0.1
""" + TRANSFORMER_LISTENER_CONFIG
DEFAULT_MODEL = Config().from_str(default_model_config)["model"]


@Language.factory("corpus_adversary", default_config={"model": DEFAULT_MODEL, "reversal_strength": 0.1})
def make_corpus_adversary(
    nlp: Language, name: str, model: Model, reversal_strength: Union[float, Iterator[float]]
) -> "CorpusAdversary":
    """model: spacy_mtl.CorpusAdversary.v1 over a listener to the shared
    encoder. reversal_strength: the factor of the reversed gradient that
    reaches the encoder, a number or a schedule (one value per update, e.g.
    warmup_linear.v1 to start at 0)."""
    return CorpusAdversary(nlp.vocab, model, name, reversal_strength=reversal_strength)


class CorpusAdversary(AuxiliaryObjective):
    def __init__(self, vocab, model: Model, name: str = "corpus_adversary", *,
                 reversal_strength: Union[float, Iterator[float]] = 0.1):
        self.vocab = vocab
        self.model = model
        self.name = name
        self.cfg: Dict[str, list] = {"labels": []}
        self.reversal_strength = reversal_strength
        self.last_strength: Optional[float] = None

    @property
    def labels(self) -> List[str]:
        return list(self.cfg["labels"])

    def next_strength(self) -> float:
        """The reversal strength of this update: the number, or the
        schedule's next value."""
        if isinstance(self.reversal_strength, (int, float)):
            return float(self.reversal_strength)
        self.last_strength = float(next(self.reversal_strength, self.last_strength))
        return self.last_strength

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd: Optional[Optimizer] = None,
               losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "CorpusAdversary.update")
        examples = list(examples)
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        self.model.get_ref("reversal").attrs["strength"] = self.next_strength()
        # Every doc goes through (a doc of no known corpus gets a zero
        # gradient): the listener's upstream waits for one per doc.
        logits, backprop = self.model.begin_update([eg.predicted for eg in examples])
        loss, d_logits = self.get_loss(examples, logits)
        backprop(d_logits)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], logits):
        """Softmax cross-entropy against each doc's corpus, averaged over the
        docs whose corpus is one of the labels."""
        ops = self.model.ops
        label_index = {label: i for i, label in enumerate(self.labels)}
        truth = [label_index.get(eg.reference.user_data.get(CORPUS_KEY), -1) for eg in examples]
        known = numpy.asarray([t >= 0 for t in truth])
        probs = ops.softmax(logits)
        host_probs = ops.to_numpy(probs)
        targets = numpy.zeros_like(host_probs)
        for row, t in enumerate(truth):
            if t >= 0:
                targets[row, t] = 1.0
        n_known = max(int(known.sum()), 1)
        d_logits = (host_probs - targets) * known[:, None] / n_known
        loss = -float(numpy.log(numpy.maximum((host_probs * targets).sum(axis=1), 1e-12))[known].sum()) / n_known
        return loss, ops.asarray2f(d_logits.astype("float32"))

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None,
                   labels: Optional[List[str]] = None) -> None:
        """The corpora are the labels: the names MultiCorpus gives each
        training doc (or `labels` from [initialize.components])."""
        validate_get_examples(get_examples, "CorpusAdversary.initialize")
        if labels is None:
            labels = sorted({eg.reference.user_data[CORPUS_KEY] for eg in get_examples()
                             if CORPUS_KEY in eg.reference.user_data})
        if len(labels) < 2:
            raise ValueError(
                f"[{self.name}] needs training docs from at least two corpora, found {labels or 'none'}: read the "
                "training data with spacy_mtl.MultiCorpus.v1, which names each doc's corpus"
            )
        self.cfg["labels"] = list(labels)
        self.model.get_ref(OUTPUT_LAYER).set_dim("nO", len(labels))
        sample = [eg.predicted for eg in islice(get_examples(), 10)]
        self.model.initialize(X=sample)
