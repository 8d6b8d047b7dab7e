"""The slot-filling + intent model: two heads over one encoder, optionally
connected (intent distribution -> soft label embedding -> slot head)."""
from typing import Callable, List, Optional, Tuple

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from .heads import OUTPUT_LAYER, build_soft_label_embedding, doc_of_rows, same_width, split_by_doc

SlotIntentOutput = Tuple[List[Floats2d], Floats2d]


@registry.architectures("spacy_mtl.SlotIntentModel.v1")
def build_slot_intent_model(
    tok2vec: Model[List[Doc], List[Floats2d]],
    intent_head: Model[List[Floats2d], Floats2d],
    slot_head: Model[List[Floats2d], List[Floats2d]],
    intent_to_slots: bool = True,
    label_embedding: Optional[Model[Floats2d, Floats2d]] = None,
) -> Model[List[Doc], SlotIntentOutput]:
    """Returns (slot logits per doc, intent logits per doc).

    intent_to_slots (bool): the slot head reads the intent head's predicted
        distribution through `label_embedding` (multi-step training), so the
        slot loss also trains the intent head.
    label_embedding: the soft label embedding; a 32-wide one by default.
    """
    layers = [tok2vec, intent_head, slot_head]
    refs = {"tok2vec": tok2vec, "intent_head": intent_head, "slot_head": slot_head}
    if intent_to_slots:
        if label_embedding is None:
            label_embedding = build_soft_label_embedding()
        layers.append(label_embedding)
        refs["label_embedding"] = label_embedding
    return Model(
        "slot_intent",
        _forward,
        init=_init,
        layers=layers,
        refs=refs,
        attrs={"multi_label": False},
    )


def _init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    tok2vec = model.get_ref("tok2vec")
    tok2vec.initialize(X=X)
    tokvecs = tok2vec.predict(X) if X is not None else None
    model.get_ref("intent_head").initialize(X=tokvecs)
    if model.has_ref("label_embedding"):
        n_intents = model.get_ref("intent_head").get_ref(OUTPUT_LAYER).get_dim("nO")
        label_embedding = model.get_ref("label_embedding")
        label_embedding.set_dim("nI", n_intents)
        label_embedding.initialize()
        if tokvecs is not None:
            width = label_embedding.get_dim("nO")
            tokvecs = [model.ops.xp.hstack((t, model.ops.alloc2f(len(t), width))) for t in tokvecs]
    model.get_ref("slot_head").initialize(X=tokvecs)
    return model


def _forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[SlotIntentOutput, Callable]:
    tokvecs, bp_encoder = model.get_ref("tok2vec")(docs, is_train)
    tokvecs, bp_tokvecs = same_width(model.ops, tokvecs, bp_encoder)
    intent_logits, bp_intent = model.get_ref("intent_head")(tokvecs, is_train)
    if model.has_ref("label_embedding"):
        slot_inputs, bp_feed = _feed_intent(model, tokvecs, intent_logits, is_train)
    else:
        slot_inputs, bp_feed = tokvecs, None
    slot_logits, bp_slots = model.get_ref("slot_head")(slot_inputs, is_train)

    def backprop(d_outputs: SlotIntentOutput):
        d_slot_logits, d_intent_logits = d_outputs
        d_slot_inputs = bp_slots(d_slot_logits)
        if bp_feed is not None:
            d_tokvecs, d_fed_logits = bp_feed(d_slot_inputs)
            d_intent_logits = d_intent_logits + d_fed_logits
        else:
            d_tokvecs = d_slot_inputs
        d_tokvecs_intent = bp_intent(d_intent_logits)
        return bp_tokvecs([a + b for a, b in zip(d_tokvecs, d_tokvecs_intent)])

    return (slot_logits, intent_logits), backprop


def _feed_intent(model: Model, tokvecs: List[Floats2d], intent_logits: Floats2d, is_train: bool):
    """Append the embedded intent distribution to every token vector (all the
    docs' tokens at once: on a GPU, operations per doc cost more)."""
    ops, xp = model.ops, model.ops.xp
    multi_label = model.attrs["multi_label"]
    probs = ops.sigmoid(intent_logits) if multi_label else ops.softmax(intent_logits)
    intent_vecs, bp_embed = model.get_ref("label_embedding")(probs, is_train)
    if not tokvecs:
        return [], lambda d_inputs: ([], bp_embed(ops.alloc2f(0, intent_vecs.shape[1])))
    width = tokvecs[0].shape[1]
    doc_of_token = doc_of_rows(ops, tokvecs)
    inputs = split_by_doc(xp, xp.hstack((xp.concatenate(tokvecs), intent_vecs[doc_of_token])), tokvecs)

    def backprop(d_inputs: List[Floats2d]) -> Tuple[List[Floats2d], Floats2d]:
        d_stacked = xp.concatenate(d_inputs)
        d_tokvecs = split_by_doc(xp, xp.ascontiguousarray(d_stacked[:, :width]), d_inputs)
        d_intent_vecs = ops.alloc2f(len(d_inputs), intent_vecs.shape[1])
        ops.scatter_add(d_intent_vecs, doc_of_token, xp.ascontiguousarray(d_stacked[:, width:]))
        d_probs = bp_embed(d_intent_vecs)
        if multi_label:
            d_logits = d_probs * probs * (1 - probs)
        else:
            # Jacobian of softmax: p * (g - <p, g>)
            d_logits = probs * (d_probs - (d_probs * probs).sum(axis=1, keepdims=True))
        return d_tokvecs, d_logits

    return inputs, backprop

