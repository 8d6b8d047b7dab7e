"""The Ray engine: Ray Data maps the shards over a pool of actors, each of
which loads the pipeline once and writes the files of the shards it is
given; the driver keeps the manifest.

Without --address, a Ray instance is started on this machine for the job
and stopped after it, on the loopback address only: Ray otherwise listens on
and connects through the machine's network address."""
import json
import os
import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from ..inputs import InputError
from .job import ShardAnnotator
from .manifest import JobSettings, Manifest
from .records import ShardTask

# Read when Ray is imported: with it off, a Ray node takes the loopback
# address as its own (ray._private.services.get_node_ip_address).
LOOPBACK_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"


def import_ray(loopback: bool):
    """Ray, set up for a local instance on the loopback address if `loopback`."""
    if loopback:
        os.environ.setdefault(LOOPBACK_ONLY_ENV, "0")
        # A local instance reports nothing to the outside.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise InputError('the ray engine needs Ray: pip install "spacy-mtl[ray]"') from err
    return ray


def start_local_ray(num_cpus: Optional[int] = None):
    """Start a Ray instance on this machine, reachable on 127.0.0.1 only."""
    ray = import_ray(loopback=True)
    ray.init(num_cpus=num_cpus, _node_ip_address=LOOPBACK, include_dashboard=False)
    address = ray.util.get_node_ip_address()
    if address != LOOPBACK:
        ray.shutdown()
        raise InputError(
            f"the local Ray instance took the address {address}, not {LOOPBACK}: set {LOOPBACK_ONLY_ENV}=0 "
            "before Ray is imported, or start one with `ray start --head --node-ip-address=127.0.0.1` and pass --address"
        )
    return ray


class RayShardAnnotator:
    """A Ray Data batch function over shard tasks: one ShardAnnotator per
    actor, so the pipeline loads once per actor."""

    def __init__(self, settings: Dict[str, Any], output_dir: str, batch_size: int, threads: int, use_gpu: bool):
        import spacy
        import torch

        torch.set_num_threads(max(1, threads))
        if use_gpu:
            spacy.require_gpu(0)  # Ray makes the actor's GPU the only one it sees
        self.annotator = ShardAnnotator(JobSettings(**settings), output_dir, batch_size)
        self.process = f"{os.uname().nodename}:{os.getpid()}"

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[str]]:
        entries = []
        for task_json in batch["task"]:
            entry = self.annotator(ShardTask.from_json(str(task_json)))
            entry["process"] = self.process
            entries.append(json.dumps(entry))
        return {"entry": entries}


def run_ray(
    pending: List[ShardTask], settings: JobSettings, output_dir: Path, manifest: Manifest, *, batch_size: int,
    address: Optional[str], num_actors: int, cpus_per_actor: float, gpus_per_actor: float,
) -> None:
    """Annotate the pending shards on Ray: the instance at `address`, the one
    this process is already connected to, or a local one started here."""
    ray = import_ray(loopback=address is None or address.rsplit(":", 1)[0] in (LOOPBACK, "localhost"))
    started_here = not ray.is_initialized()
    if started_here and address is None:
        start_local_ray()
    elif started_here:
        ray.init(address=address)
    try:
        with _sigterm_as_exit():
            _map_shards(ray, pending, settings, output_dir, manifest, batch_size, num_actors, cpus_per_actor,
                        gpus_per_actor)
    finally:
        if started_here:
            ray.shutdown()


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """A terminated job still stops the Ray instance it started (the
    default SIGTERM ends Python without running `finally`)."""
    def exit_(signum, frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, exit_)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _map_shards(ray, pending, settings, output_dir, manifest, batch_size, num_actors, cpus_per_actor, gpus_per_actor):
    from dataclasses import asdict

    tasks = ray.data.from_items([{"task": task.to_json()} for task in pending], override_num_blocks=len(pending))
    entries = tasks.map_batches(
        RayShardAnnotator,
        fn_constructor_kwargs={
            "settings": asdict(settings), "output_dir": str(output_dir.resolve()), "batch_size": batch_size,
            "threads": int(cpus_per_actor), "use_gpu": gpus_per_actor > 0,
        },
        batch_size=1,
        # One shard at a time per actor, so that shards spread evenly.
        compute=ray.data.ActorPoolStrategy(size=num_actors, max_tasks_in_flight_per_actor=1),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    for row in entries.iter_rows():
        manifest.add(json.loads(row["entry"]))
