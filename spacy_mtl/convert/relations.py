"""SpERT JSON (CoNLL04, SciERC, ...): a list of sentences, each with
`tokens`, `entities` ({type, start, end}, end exclusive) and `relations`
({type, head, tail}, indices into `entities`)."""
import json
from pathlib import Path
from functools import partial
from typing import Callable, Iterator, Optional, Union

from spacy.tokens import Doc, Span
from spacy.vocab import Vocab

from ..relations import Relation, set_relations
from .errors import ConversionError
from .write import write_docbin


def read_spert(path: Union[str, Path], vocab: Optional[Vocab] = None) -> Iterator[Doc]:
    """Docs with entities in doc.ents and relations in doc._.relations."""
    return (build() for build in spert_doc_builders(Path(path), vocab or Vocab()))


def spert_doc_builders(path: Path, vocab: Vocab) -> Iterator[Callable[[], Doc]]:
    """One doc-building function a sentence: each raises its own errors."""
    try:
        sentences = json.loads(path.read_text(encoding="utf8"))
    except FileNotFoundError:
        raise ConversionError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(path, f"not valid JSON: {err}", getattr(err, "lineno", None)) from None
    if not isinstance(sentences, list):
        raise ConversionError(path, "expected a JSON list of sentences")
    for i, sentence in enumerate(sentences):
        yield partial(_make_doc, vocab, path, i, sentence)


def _make_doc(vocab: Vocab, path: Path, index: int, sentence: dict) -> Doc:
    def fail(message: str) -> ConversionError:
        where = f"sentence {index + 1}" + (f" (orig_id {sentence['orig_id']})" if "orig_id" in sentence else "")
        return ConversionError(path, f"{where}: {message}")

    if not isinstance(sentence, dict):
        raise fail("expected an object with tokens, entities and relations")
    tokens = sentence.get("tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
        raise fail("'tokens' must be a non-empty list of non-empty strings")
    doc = Doc(vocab, words=[token.strip() for token in tokens])
    entities = []
    for j, entity in enumerate(sentence.get("entities", [])):
        start, end, label = entity.get("start"), entity.get("end"), entity.get("type")
        if not isinstance(start, int) or not isinstance(end, int) or not (0 <= start < len(tokens)) or end > len(tokens):
            raise fail(f"entities[{j}]: span [{start}, {end}) out of range for {len(tokens)} tokens")
        if end <= start:
            raise fail(f"entities[{j}]: empty or inverted span [{start}, {end})")
        if not isinstance(label, str) or not label:
            raise fail(f"entities[{j}]: missing 'type'")
        entities.append(Span(doc, start, end, label=label))
    by_start = sorted(range(len(entities)), key=lambda j: entities[j].start)
    for a, b in zip(by_start, by_start[1:]):
        if entities[b].start < entities[a].end:
            raise fail(f"entities[{a}] and entities[{b}] overlap")
    doc.set_ents(entities, default="outside")
    relations = []
    for k, relation in enumerate(sentence.get("relations", [])):
        for field in ("head", "tail"):
            value = relation.get(field)
            if not isinstance(value, int) or not (0 <= value < len(entities)):
                raise fail(f"relations[{k}].{field} = {value!r}, but the sentence has {len(entities)} entities")
        if not isinstance(relation.get("type"), str) or not relation["type"]:
            raise fail(f"relations[{k}]: missing 'type'")
        relations.append(Relation(entities[relation["head"]], entities[relation["tail"]], relation["type"]))
    set_relations(doc, relations)
    return doc


def convert_relations(in_path: Union[str, Path], out_path: Union[str, Path]) -> int:
    """Convert a SpERT JSON file to a .spacy file; returns the number of docs.
    Everything is checked before anything is written."""
    return write_docbin(list(read_spert(in_path)), out_path, in_path)
