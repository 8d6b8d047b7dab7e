"""Names that several layers share: the converters write them, the readers
set them, the components read and write them, the scorers read them. They
live here so that none of those layers imports another for a name."""

# Span groups: slot spans (label = slot type) and chunks (label = chunk type).
SLOTS_KEY = "slots"
CHUNKS_KEY = "chunks"

# The dependency label of a sentence's root word.
ROOT_LABEL = "ROOT"

# doc.user_data keys.
# The relations of a doc, stored as plain rows (doc._.relations reads them).
RELATIONS_KEY = "spacy_mtl.relations"
# A training doc's dropout rate inside the shared transformer (set by a
# MultiCorpus corpus with `encoder_dropout`).
ENCODER_DROPOUT_KEY = "spacy_mtl.encoder_dropout"
# The names of the components whose gold a doc's reference holds (set by a
# `predict_scored_only` MultiCorpus): the others leave the doc unannotated.
SCORED_BY_KEY = "spacy_mtl.scored_by"
# An annotated doc's input record, without its text (`spacy-mtl annotate
# --format docbin`).
RECORD_KEY = "spacy_mtl.record"
# The name of the MultiCorpus corpus a training doc's reference came from
# (corpus_adversary's labels).
CORPUS_KEY = "spacy_mtl.corpus"
