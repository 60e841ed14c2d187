"""The zoo's exceptions. Every message names the problem *and* the fix."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class ZooError(Exception):
    """Base class of every error the zoo raises on purpose."""


class UnknownNameError(ZooError, KeyError):
    """A name (modality, encoder, objective, dataset, model…) that nothing registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], hint: str = "", context: str = ""):
        self.kind, self.name = kind, name
        self.known = sorted(set(known))
        self.suggestions = closest(name, self.known)
        msg = f"unknown {kind} {name!r}{context}."
        if self.suggestions:
            msg += f" Did you mean: {', '.join(map(repr, self.suggestions))}?"
        elif self.known:
            shown = ", ".join(self.known[:20]) + (" …" if len(self.known) > 20 else "")
            msg += f" Registered: {shown}."
        elif not hint:
            msg += f" No {kind} is registered."
        msg += " " + (hint or "Run `zoo list` to see every registered name, or install the plugin that provides it.")
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class RecipeError(ZooError, ValueError):
    """A recipe (TOML) or an override that does not validate."""


class OptionError(RecipeError):
    """One option of an encoder, objective, dataset or pair strategy is out of range. ``option`` names
    it, so that a recipe build can report the recipe key (``objective.options.label_smoothing``)."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


class ShapeError(ZooError, ValueError):
    """A tensor whose shape does not fit: the message says expected vs got."""


class CheckpointError(ZooError):
    """A checkpoint that is missing, corrupt, or does not fit the architecture."""


class PluginError(ZooError):
    """A plugin that failed to load or registered something twice."""


class DuplicateNameError(PluginError):
    """A name (plugin, modality, encoder…) that a second plugin registers again."""


class DeviceError(ZooError, ValueError):
    """A device (``cuda``, ``mps``…) that this machine or this torch build does not have."""


class DataError(ZooError, ValueError):
    """A dataset or a raw input that cannot be read or used."""


def closest(name: str, known: Iterable[str], n: int = 5) -> list[str]:
    """The registered names closest to ``name`` (prefix matches first, then difflib)."""
    known, name = list(known), str(name)  # a recipe may hand a number where a name belongs
    low = name.lower()
    prefix = [k for k in known if k.lower().startswith(low) or low.startswith(k.lower())] if low else []
    fuzzy = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    out: list[str] = []
    for k in prefix + fuzzy:
        if k not in out:
            out.append(k)
    return out[:n]


class GradientError(ZooError, RuntimeError):
    """A backward pass that cannot run: the loss was computed without gradients."""


class TrainingInterrupted(ZooError):
    """SIGINT or SIGTERM arrived during training. Raised once the run is safe on disk (the step finished
    and a checkpoint written, or the run completed), so that the signal reaches the caller: a script
    that trains several runs stops instead of going on to the next. ``result`` is the run's TrainResult."""

    def __init__(self, signal: str, result: "TrainResult"):  # noqa: F821 (zoo.training.trainer.TrainResult)
        self.signal, self.result = signal, result
        m = result.metrics
        if "stopped_at" in m:
            what = (f"stopped at step {m['stopped_at']} with checkpoint {m['checkpoint']}. Resume with "
                    f"`zoo train --resume {result.run_dir}` (zoo.train(None, resume=True, run_dir=...))")
        else:
            what = f"the run had just finished; its results are in {result.run_dir}"
        super().__init__(f"training was interrupted by {signal}: {what}.")
