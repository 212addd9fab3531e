"""The one result type of every training call in the library."""

import equinox as eqx

from ._results import RESULTS


class Training(eqx.Module):
    """What a training call returns (``sciax.operators.fit``,
    ``sciax.operators.fit_stream``, ``sciax.solvers.train_direction_network``).

    The trained network is ``model``, not ``value``: a training call's
    output is a model, while ``value`` names the solution of a solve or a
    fit. ``result`` and ``stats`` follow the library's vocabulary.

    Attributes:
        model: the trained model, after the last step or epoch that
            finished with a finite training loss.
        result: ``RESULTS.successful``, or ``RESULTS.nonfinite_loss`` when
            training stopped at a NaN or inf loss.
        stats: a dict with at least ``"train_loss"`` (the training loss of
            every epoch or step; each trainer's docstring says which),
            ``"num_steps"`` (optimizer steps done in all, those before a
            resume included) and ``"seconds"`` (wall-clock seconds of this
            call, compilation included); ``fit`` adds ``"validation_loss"``,
            ``"epoch_seconds"`` and ``"num_epochs"``; ``fit_stream`` the
            counts of fresh samples and of their reuse.
    """

    model: eqx.Module
    result: RESULTS
    stats: dict
