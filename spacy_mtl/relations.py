"""`doc._.relations`: relations between entity spans, kept as plain data in
`doc.user_data` so they survive DocBin, to_bytes/from_bytes and pickling."""
from dataclasses import dataclass
from typing import Iterable, List, Tuple

from spacy.tokens import Doc, Span

from .names import RELATIONS_KEY

# (head start, head end, head label, tail start, tail end, tail label, label, score)
RelationRow = Tuple[int, int, str, int, int, str, str, float]


@dataclass(frozen=True)
class Relation:
    head: Span
    tail: Span
    label: str
    score: float = 1.0

    def as_row(self) -> RelationRow:
        return (
            self.head.start, self.head.end, self.head.label_,
            self.tail.start, self.tail.end, self.tail.label_,
            self.label, float(self.score),
        )


def get_relations(doc: Doc) -> List[Relation]:
    return [
        Relation(Span(doc, hs, he, label=hl), Span(doc, ts, te, label=tl), label, score)
        for hs, he, hl, ts, te, tl, label, score in get_relation_rows(doc)
    ]


def set_relations(doc: Doc, relations: Iterable[Relation]) -> None:
    set_relation_rows(doc, (relation.as_row() for relation in relations))


def get_relation_rows(doc: Doc) -> List[RelationRow]:
    """The relations as rows, without building their spans."""
    return [tuple(row) for row in doc.user_data.get(RELATIONS_KEY, [])]


def set_relation_rows(doc: Doc, rows: Iterable[RelationRow]) -> None:
    doc.user_data[RELATIONS_KEY] = [list(row) for row in rows]


def has_relations_annotation(doc: Doc) -> bool:
    """Whether the doc is annotated for relations (an empty list counts)."""
    return RELATIONS_KEY in doc.user_data


if not Doc.has_extension("relations"):
    Doc.set_extension("relations", getter=get_relations, setter=set_relations)
