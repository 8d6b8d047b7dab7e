"""spaCy's console log, plus what multi-task training needs to watch: each
head's loss and weight, each component's gradient at the shared encoder, and
a progress line between evaluations."""
import sys
import time
from typing import Any, Callable, Dict, Optional

from spacy.language import Language
from spacy.util import registry

from ..weighting import multitask_heads, multitask_pipes


@registry.loggers("spacy_mtl.ConsoleLogger.v1")
def create_console_logger(
    progress_bar: bool = False,
    console_output: bool = True,
    output_file: Optional[str] = None,
    progress_every: int = 0,
) -> Callable:
    """spaCy's console logger, plus lines per evaluation with every head's
    loss since the previous one and its current weight, and the norm of the
    gradient each component sent to the encoder in the latest step (before
    its gradnorm scale). progress_bar: spaCy's bar, shown in a terminal
    only. progress_every: every this many steps, a line with the step, the
    seconds per step and the next evaluation's step, which a log file or a
    pipe shows too (0: none)."""
    from spacy.training.loggers import console_logger

    spacy_logger = console_logger(progress_bar=progress_bar, console_output=console_output, output_file=output_file)

    def setup_printer(nlp: Language, stdout=None, stderr=None):
        stdout = stdout or sys.stdout
        log_step, finalize = spacy_logger(nlp, stdout, stderr)
        eval_frequency = nlp.config["training"]["eval_frequency"]
        progress = StepProgress(stdout, progress_every, eval_frequency)

        def log_step_with_heads(info: Optional[Dict[str, Any]]) -> None:
            log_step(info)
            if not console_output:
                return
            if info is None:
                progress.step()
                return
            progress.evaluated(info["step"])
            write_head_lines(nlp, info, stdout)

        return log_step_with_heads, finalize

    return setup_printer


def write_head_lines(nlp: Language, info: Dict[str, Any], stdout) -> None:
    parts = []
    for key, pipe, head in multitask_heads(nlp):
        loss = info.get("losses", {}).get(key)
        loss_text = "-" if loss is None else f"{loss:.2f}"
        parts.append(f"{key} loss {loss_text} weight {pipe.cfg[f'{head}_weight']:.3f}")
    if parts:
        stdout.write("    heads: " + "; ".join(parts) + "\n")
    encoder_parts = []
    for name, pipe in multitask_pipes(nlp):
        norm = pipe.weights.last_encoder_gradient_norm
        norm_text = "-" if norm is None else f"{norm:.3f}"
        encoder_parts.append(f"{name} grad norm {norm_text} scale {pipe.weights.encoder_gradient_scale:.3f}")
    if encoder_parts:
        stdout.write("    encoder: " + "; ".join(encoder_parts) + "\n")


class StepProgress:
    """Counts the training steps between evaluations (spaCy logs each step,
    with no info on the steps that do not evaluate) and writes a line every
    `every` steps."""

    def __init__(self, stdout, every: int, eval_frequency: int) -> None:
        self.stdout = stdout
        self.every = every
        self.eval_frequency = eval_frequency
        self.last_step = 0
        self.since = time.perf_counter()

    def evaluated(self, step: int) -> None:
        self.last_step = step
        self.since = time.perf_counter()

    def step(self) -> None:
        self.last_step += 1
        if not self.every or self.last_step % self.every:
            return
        steps_done = self.last_step % self.eval_frequency or self.eval_frequency
        seconds = (time.perf_counter() - self.since) / steps_done
        next_eval = (self.last_step // self.eval_frequency + 1) * self.eval_frequency
        self.stdout.write(f"    step {self.last_step}: {seconds:.2f} s/step; next evaluation at step {next_eval}\n")
        self.stdout.flush()
