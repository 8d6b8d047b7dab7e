"""Every config the project trains with builds its pipeline and validates its
[training] and [initialize] blocks, so a misspelt setting fails here rather
than after a long corpus read. The transformer is swapped for the tiny test
BERT: neither the MiniLM package nor a model hub is needed."""
from pathlib import Path

import pytest
from spacy.schemas import ConfigSchemaInit, ConfigSchemaTraining
from spacy.util import load_config, load_model_from_config, registry

CONFIGS = sorted((Path(__file__).parents[1] / "project" / "configs").glob("*.cfg"))


@pytest.mark.parametrize("config_path", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_project_config_builds_its_pipeline(config_path, tiny_bert):
    config = load_config(config_path)
    if "transformer" in config["components"]:
        config["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == config["nlp"]["pipeline"]
    interpolated = nlp.config.interpolate()
    training = registry.resolve(interpolated["training"], schema=ConfigSchemaTraining)
    assert training["max_steps"] >= 0 and training["optimizer"] is not None
    initialize = registry.resolve(interpolated["initialize"], schema=ConfigSchemaInit)
    assert initialize["after_init"] is None or callable(initialize["after_init"])


def test_project_has_configs():
    assert {"all_trf", "all_gpu", "slot_intent_trf", "ner_re_trf", "cascade_trf"} <= {path.stem for path in CONFIGS}


def test_gpu_config_has_the_cpu_configs_settings():
    """all_gpu.cfg is all_trf.cfg for a GPU: a setting changed in one alone
    would make GPU runs train another pipeline than the README's results."""
    configs_dir = CONFIGS[0].parent
    cpu, gpu = (load_config(configs_dir / name) for name in ("all_trf.cfg", "all_gpu.cfg"))
    assert (cpu["system"]["gpu_allocator"], gpu["system"]["gpu_allocator"]) == (None, "pytorch")
    for config, mixed in ((cpu, False), (gpu, True)):
        config["system"]["gpu_allocator"] = None
        for section in (config["components"]["transformer"]["model"], config["components"]["cascade"]["model"]):
            assert section.pop("mixed_precision") is mixed
    assert gpu == cpu
