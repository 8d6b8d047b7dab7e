"""`spacy-mtl annotate --engine ray` on a Ray instance started here, on the
loopback address, with two actors: the same output as nlp.pipe and as the
local engine, bad records reported, order kept, a killed job resumed."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import spacy
import torch

from annotation import BAD_LINES, corpus_texts, done_shards, expected_output, kill_after, read_output, shard_bytes, write_corpus
from spacy_mtl.annotate import annotate
from spacy_mtl.annotate.ray_engine import start_local_ray

pytestmark = pytest.mark.slow  # starts Ray and trains the all-in-one pipeline of the fixtures


@pytest.fixture(scope="module")
def ray_instance():
    ray = start_local_ray(num_cpus=2)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def one_thread():
    """The actors' PyTorch threads (one CPU each): a doc's scores change in
    the last digits with the number of threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def texts(snips_docs, conll04_sample, cascade_docs):
    return corpus_texts(snips_docs, conll04_sample, cascade_docs)


def run(model, source, output, **settings):
    return annotate(str(model), source, output, progress=False, log=lambda line: None, **settings)


def test_two_actors_write_what_nlp_pipe_gives(ray_instance, one_thread, all_in_one_path, texts, tmp_path):
    records = write_corpus(tmp_path / "corpus.jsonl", texts, bad_every=20)
    summary = run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "ray", engine="ray", num_actors=2,
                  shard_size=16, batch_size=1)
    assert read_output(tmp_path / "ray") == expected_output(spacy.load(all_in_one_path), records)
    assert summary["records"] == summary["annotated"] + summary["rejected"] == len(records) + len(BAD_LINES)
    assert len(summary["peak_rss_mb_per_process"]) == 2
    run(all_in_one_path, tmp_path / "corpus.jsonl", tmp_path / "local", shard_size=16, batch_size=1)
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    assert (tmp_path / "ray" / "errors.jsonl").read_bytes() == (tmp_path / "local" / "errors.jsonl").read_bytes()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to list sockets")
def test_ray_listens_and_talks_on_the_loopback_address_only(ray_instance):
    sockets = subprocess.run(["ss", "-tanp"], capture_output=True, text=True, check=True).stdout.splitlines()
    ray_processes = re.compile(r'"(raylet|gcs_server|ray::[^"]*)"|pid=%d,' % os.getpid())
    ours = [line for line in sockets if ray_processes.search(line)]
    assert ours
    for line in ours:
        local, peer = line.split()[3:5]
        assert local.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]"), line
        assert peer.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]", "*", "0.0.0.0"), line


def test_a_killed_ray_job_resumes_to_the_output_of_an_uninterrupted_one(
    ray_instance, one_thread, all_in_one_path, texts, tmp_path
):
    source = tmp_path / "corpus.jsonl"
    write_corpus(source, texts * 4, bad_every=50)
    out = tmp_path / "out"
    address = ray_instance.get_runtime_context().gcs_address
    command = [sys.executable, "-m", "spacy_mtl", "annotate", str(all_in_one_path), str(source), str(out),
               "--engine", "ray", "--address", address, "--num-actors", "2", "--shard-size", "20"]
    kill_after(command, out, 2)
    n_shards = -(-len(source.read_bytes().splitlines()) // 20)
    assert 2 <= done_shards(out) < n_shards
    run(all_in_one_path, source, out, engine="ray", num_actors=2, shard_size=20)
    run(all_in_one_path, source, tmp_path / "whole", shard_size=20)
    assert shard_bytes(out) == shard_bytes(tmp_path / "whole")
    assert done_shards(out) == n_shards
