"""HTML rendering of entities and relations, in the style of displaCy: the
tokens on one line, entities as coloured boxes, relations as labelled arcs
from head entity to tail entity."""
import html
from typing import Dict, Iterable, List, Tuple

from spacy.tokens import Doc

# Monospace text, so that token widths follow from character counts.
CHAR_WIDTH, TOKEN_GAP, FONT_SIZE = 9, 12, 15
LEVEL_HEIGHT, MARGIN = 34, 16
COLORS = ["#7aecec", "#feca74", "#ddd", "#aa9cfc", "#c887fb", "#bfe1d9", "#e4e7d2", "#ff9561"]


def render_relations(docs: Iterable[Doc], page: bool = True) -> str:
    """An HTML page (or fragment) with one SVG figure per doc."""
    docs = list(docs)
    colors = _label_colors(ent.label_ for doc in docs for ent in doc.ents)
    figures = "\n".join(_render_doc(doc, colors) for doc in docs)
    if not page:
        return figures
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>spacy-mtl relations</title></head>\n'
        f'<body style="margin: 0; padding: 20px; font-family: sans-serif; background: #fff">\n{figures}\n</body></html>\n'
    )


def _render_doc(doc: Doc, colors: Dict[str, str]) -> str:
    positions = _token_positions(doc)
    relations = sorted(doc._.relations, key=lambda r: abs(_center(r.head, positions) - _center(r.tail, positions)))
    levels = _arc_levels([(_center(r.head, positions), _center(r.tail, positions)) for r in relations])
    top = MARGIN + LEVEL_HEIGHT * (max(levels, default=0) + 1)
    width = (positions[-1][1] if positions else 0) + 2 * MARGIN
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="spacy-mtl-relations" width="{width}" height="{top + 60}" '
        f'style="display: block; margin-bottom: 24px; font: {FONT_SIZE}px monospace">',
        "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
        "orient=\"auto-start-reverse\"><path d=\"M 0 0 L 10 5 L 0 10 z\" fill=\"#333\"/></marker></defs>",
    ]
    for ent in doc.ents:
        x0, x1 = positions[ent.start][0] - 4, positions[ent.end - 1][1] + 4
        parts.append(
            f'<rect class="entity" data-label="{html.escape(ent.label_)}" x="{x0}" y="{top - FONT_SIZE - 4}" '
            f'width="{x1 - x0}" height="{FONT_SIZE + 12}" rx="4" fill="{colors[ent.label_]}"/>'
            f'<text x="{(x0 + x1) / 2}" y="{top + 24}" text-anchor="middle" font-size="11" '
            f'font-weight="bold" fill="#555">{html.escape(ent.label_)}</text>'
        )
    for token, (x0, _) in zip(doc, positions):
        parts.append(f'<text class="token" x="{x0}" y="{top}">{html.escape(token.text)}</text>')
    for relation, level in zip(relations, levels):
        start, end = _center(relation.head, positions), _center(relation.tail, positions)
        y = top - FONT_SIZE - 4
        height = LEVEL_HEIGHT * (level + 1)
        parts.append(
            f'<path class="relation" data-label="{html.escape(relation.label)}" '
            f'd="M {start} {y} C {start} {y - height}, {end} {y - height}, {end} {y}" '
            f'fill="none" stroke="#333" stroke-width="1.5" marker-end="url(#arrow)"/>'
            f'<text x="{(start + end) / 2}" y="{y - 0.75 * height + 4}" text-anchor="middle" font-size="12" '
            f'fill="#222" style="paint-order: stroke" stroke="#fff" stroke-width="4">'
            f"{html.escape(relation.label)}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _token_positions(doc: Doc) -> List[Tuple[int, int]]:
    positions, x = [], MARGIN
    for token in doc:
        width = CHAR_WIDTH * max(len(token.text), 1)
        positions.append((x, x + width))
        x += width + TOKEN_GAP
    return positions


def _center(span, positions) -> float:
    return (positions[span.start][0] + positions[span.end - 1][1]) / 2


def _arc_levels(arcs: List[Tuple[float, float]]) -> List[int]:
    """Stack arcs (shortest first): an arc goes one level above every shorter
    arc it overlaps."""
    levels: List[int] = []
    for i, (a, b) in enumerate(arcs):
        low, high = min(a, b), max(a, b)
        below = [levels[j] for j, (c, d) in enumerate(arcs[:i]) if min(c, d) < high and max(c, d) > low]
        levels.append(max(below, default=-1) + 1)
    return levels


def _label_colors(labels: Iterable[str]) -> Dict[str, str]:
    return {label: COLORS[i % len(COLORS)] for i, label in enumerate(sorted(set(labels)))}


def render_spans(docs: Iterable[Doc], spans_key: str, page: bool = True) -> str:
    """Span groups (slots, chunks) with displaCy's span style."""
    from spacy import displacy

    return displacy.render(list(docs), style="span", options={"spans_key": spans_key}, page=page)


def render_dependencies(docs: Iterable[Doc], page: bool = True) -> str:
    """Dependency trees (and tags) with displaCy's dependency style."""
    from spacy import displacy

    return displacy.render(list(docs), style="dep", options={"fine_grained": True, "compact": True}, page=page)
