"""The all-in-one pipeline on a GPU beside the CPU (skipped without a GPU):
what a pipeline loaded after spacy.require_gpu() and `spacy train --gpu-id 0`
run."""
from contextlib import contextmanager
from typing import Any, List

import numpy
import pytest
import spacy
from thinc.util import has_cupy_gpu

from annotation import corpus_texts
from pipelines import component_weights, examples_for, update
from spacy_mtl.annotate import doc_annotations
from spacy_mtl.convert import read_spert
from spacy_mtl.ml.optimizers import FusedAdam

pytestmark = pytest.mark.skipif(not has_cupy_gpu, reason="needs a GPU with CuPy")


@contextmanager
def on_gpu():
    spacy.require_gpu(0)
    try:
        yield
    finally:
        spacy.require_cpu()


def without_floats(value: Any, floats: List[float]) -> Any:
    """The value with each float (a score) replaced by None; the floats are
    appended to `floats` in order."""
    if isinstance(value, float):
        floats.append(value)
        return None
    if isinstance(value, dict):
        return {key: without_floats(item, floats) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [without_floats(item, floats) for item in value]
    return value


def annotations(path, texts: List[str]):
    """Every doc's annotations (Doc.to_json and the relations) without their
    scores, and the scores."""
    scores: List[float] = []
    labels = [without_floats(doc_annotations(doc), scores) for doc in spacy.load(path).pipe(texts, batch_size=16)]
    return labels, numpy.asarray(scores)


def test_the_all_in_one_pipeline_annotates_on_a_gpu_as_on_the_cpu(all_in_one_path, snips_docs, conll04_sample, cascade_docs):
    """Same weights: the same tags, trees, chunks, slots, entities and
    relations, and scores within float rounding (both devices multiply in
    float32), but for a near tie now and then."""
    texts = corpus_texts(snips_docs, conll04_sample, cascade_docs)
    cpu_labels, cpu_scores = annotations(all_in_one_path, texts)
    with on_gpu():
        gpu_labels, gpu_scores = annotations(all_in_one_path, texts)
    differing = [i for i, (cpu, gpu) in enumerate(zip(cpu_labels, gpu_labels)) if cpu != gpu]
    assert len(differing) <= len(texts) // 50, [texts[i] for i in differing]
    if not differing:
        numpy.testing.assert_allclose(gpu_scores, cpu_scores, atol=1e-3)


@pytest.mark.parametrize("mixed_precision", [False, True])
def test_training_steps_on_a_gpu_move_every_component(all_in_one_path, snips_docs, conll04_sample, cascade_docs, mixed_precision):
    """The GPU settings of the project's gpu workflow: the fused optimizer
    and, in the transformer and the cascade, mixed precision (a gradient
    scaler). Each head's loss is finite, and every component's weights move,
    the shared transformer's too."""
    path, _ = conll04_sample
    docs = snips_docs[:16] + list(read_spert(path))[:16] + cascade_docs[:16]
    precision = {"model": {"mixed_precision": mixed_precision}}
    with on_gpu():
        nlp = spacy.load(all_in_one_path, config={"components": {"transformer": precision, "cascade": precision}})
        examples = examples_for(nlp, docs)
        optimizer = FusedAdam(0.001)
        before = {name: component_weights(component) for name, component in nlp.pipeline}
        losses = {}
        for _ in range(3):
            update(nlp, examples, optimizer, losses)
        after = {name: component_weights(component) for name, component in nlp.pipeline}
    assert {"slot_intent", "ner_re", "cascade"} <= set(losses), losses
    assert all(numpy.isfinite(loss) for loss in losses.values()), losses
    unmoved = [name for name in before if all(numpy.array_equal(b, a) for b, a in zip(before[name], after[name]))]
    assert unmoved == [], unmoved
