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
    assert {"all_trf", "slot_intent_trf", "ner_re_trf", "cascade_trf"} <= {path.stem for path in CONFIGS}


def gpu_overrides() -> dict:
    """The `gpu_overrides` of project.yml, as spaCy parses them."""
    from spacy.cli._util import parse_config_overrides
    import srsly

    project = srsly.read_yaml(CONFIGS[0].parents[1] / "project.yml")
    return parse_config_overrides(project["vars"]["gpu_overrides"].split())


def test_gpu_run_is_the_cpu_config_with_gpu_settings(tiny_bert):
    """The gpu workflow trains configs/all_trf.cfg with the overrides of
    project.yml: they name settings that exist, and change nothing else."""
    overrides = gpu_overrides()
    assert overrides == {
        "system.gpu_allocator": "pytorch",
        "components.transformer.model.mixed_precision": True,
        "components.cascade.model.mixed_precision": True,
        "training.optimizer.@optimizers": "spacy_mtl.FusedAdam.v1",
    }
    path = CONFIGS[0].parent / "all_trf.cfg"
    cpu, gpu = load_config(path), load_config(path, overrides=overrides)
    assert cpu["components"]["transformer"]["model"]["mixed_precision"] is False
    assert gpu.interpolate()["training"]["gpu_allocator"] == "pytorch"
    gpu["components"]["transformer"]["model"]["name"] = str(tiny_bert)
    nlp = load_model_from_config(gpu, auto_fill=True, validate=True)
    assert nlp.config["components"]["cascade"]["model"]["mixed_precision"] is True
    from spacy.util import registry
    from spacy_mtl.ml.optimizers import FusedAdam

    optimizer = registry.resolve({"optimizer": gpu.interpolate()["training"]["optimizer"]})["optimizer"]
    assert isinstance(optimizer, FusedAdam) and optimizer.grad_clip == 1.0
