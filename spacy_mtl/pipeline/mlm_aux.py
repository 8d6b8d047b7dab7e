"""`mlm_aux`: a masked-language-model loss on the shared transformer, as an
auxiliary objective beside the tasks (Rei 2017; van der Goot et al. 2021).
At each update it masks the word pieces of some texts (the batch's own, or
lines of a plain-text file), runs the shared encoder on them and scores the
masked pieces against the encoder's input embeddings; the encoder's gradient
joins the tasks' and is stepped by the transformer component. It annotates
nothing: removing it from a trained pipeline changes no output."""
import weakref
from itertools import cycle
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

import torch
from spacy.language import Language
from spacy.training import Example, validate_examples
from thinc.api import Config, Model, Optimizer

from ..ml.mlm import mask_wordpieces
from .base import AuxiliaryObjective

default_model_config = """
[model]
@architectures = "spacy_mtl.MaskedLMHead.v1"
hidden_width = 384
"""
DEFAULT_MODEL = Config().from_str(default_model_config)["model"]


@Language.factory(
    "mlm_aux",
    default_config={
        "model": DEFAULT_MODEL, "upstream": "transformer", "texts_path": None, "texts_per_update": 16,
        "max_length": 128, "mask_rate": 0.15, "mlm_weight": 0.5,
    },
)
def make_mlm_aux(
    nlp: Language, name: str, model: Model, upstream: str, texts_path: Optional[str], texts_per_update: int,
    max_length: int, mask_rate: float, mlm_weight: float,
) -> "MaskedLMAux":
    """upstream: the transformer component to train. texts_path: a text
    file, a text a line, to draw texts_per_update lines from at each update
    (default: the batch's own texts, up to texts_per_update). max_length:
    word pieces per text. mlm_weight: the factor of the loss's gradient."""
    return MaskedLMAux(nlp, model, name, upstream=upstream, texts_path=texts_path, texts_per_update=texts_per_update,
                       max_length=max_length, mask_rate=mask_rate, mlm_weight=mlm_weight)


class MaskedLMAux(AuxiliaryObjective):
    def __init__(self, nlp: Language, model: Model, name: str = "mlm_aux", *, upstream: str = "transformer",
                 texts_path: Optional[str] = None, texts_per_update: int = 16, max_length: int = 128,
                 mask_rate: float = 0.15, mlm_weight: float = 0.5):
        self.vocab = nlp.vocab
        self.model = model
        self.name = name
        self._nlp = weakref.ref(nlp)
        self.cfg = {"upstream": upstream, "texts_path": texts_path, "texts_per_update": texts_per_update,
                    "max_length": max_length, "mask_rate": mask_rate, "mlm_weight": mlm_weight}
        self._file_texts: Optional[Iterator[str]] = None

    @property
    def head(self) -> torch.nn.Module:
        return self.model.shims[0]._model

    def _upstream_model(self) -> Model:
        nlp = self._nlp()
        if nlp is None or self.cfg["upstream"] not in nlp.component_names:
            raise ValueError(f"[{self.name}] no upstream component '{self.cfg['upstream']}' in the pipeline")
        return nlp.get_pipe(self.cfg["upstream"]).model

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd: Optional[Optimizer] = None,
               losses: Optional[Dict[str, float]] = None) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        validate_examples(examples, "MaskedLMAux.update")
        texts = self._texts(list(examples))
        if texts:
            loss = self._masked_lm_loss(texts)
            if loss is not None:
                (self.cfg["mlm_weight"] * loss).backward()
                losses[self.name] += loss.item()
        if sgd is not None:
            self.finish_update(sgd)
        return losses

    def _texts(self, examples: List[Example]) -> List[str]:
        if self._file_texts is not None:
            return [next(self._file_texts) for _ in range(self.cfg["texts_per_update"])]
        texts = [eg.predicted.text for eg in examples if eg.predicted.text.strip()]
        return texts[: self.cfg["texts_per_update"]]

    def _masked_lm_loss(self, texts: List[str]) -> Optional[torch.Tensor]:
        upstream = self._upstream_model()
        encoder, tokenizer = upstream.transformer, upstream.tokenizer
        batch = tokenizer(texts, truncation=True, max_length=self.cfg["max_length"], padding=True,
                          return_tensors="pt", return_special_tokens_mask=True)
        maskable = (batch["special_tokens_mask"] == 0) & (batch["attention_mask"] == 1)
        if not maskable.any():
            return None
        embeddings = encoder.get_input_embeddings().weight
        masked, labels = mask_wordpieces(batch["input_ids"], maskable, tokenizer.mask_token_id, embeddings.shape[0],
                                         self.cfg["mask_rate"])
        device = embeddings.device
        was_training = encoder.training
        encoder.train()
        self.head.train()
        try:
            hidden = encoder(input_ids=masked.to(device), attention_mask=batch["attention_mask"].to(device))[0]
        finally:
            encoder.train(was_training)
        chosen = labels != -100
        logits = self.head(hidden[chosen.to(device)]) @ embeddings.t()
        return torch.nn.functional.cross_entropy(logits.float(), labels[chosen].to(device))

    def initialize(self, get_examples, *, nlp: Optional[Language] = None) -> None:
        """Checks the upstream encoder and the text file; the head is built
        with the model."""
        upstream = self._upstream_model()
        width = upstream.transformer.config.hidden_size
        if self.model.attrs["hidden_width"] != width:
            raise ValueError(
                f"[{self.name}] model.hidden_width {self.model.attrs['hidden_width']} does not match the hidden size "
                f"of '{self.cfg['upstream']}' ({width})"
            )
        self._file_texts = None
        if self.cfg["texts_path"] is not None:
            self._file_texts = cycle(read_texts(Path(self.cfg["texts_path"]), self.name))
        self.model.initialize()


def read_texts(path: Path, name: str) -> List[str]:
    """The non-blank lines of a UTF-8 text file, or a ValueError naming it."""
    if not path.is_file():
        raise ValueError(f"[{name}] texts_path {path}: no such file")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"[{name}] texts_path {path}: not UTF-8 text (byte {err.start})") from err
    if not lines:
        raise ValueError(f"[{name}] texts_path {path}: holds no text")
    return lines
