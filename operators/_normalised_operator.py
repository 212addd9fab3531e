"""A neural operator between fixed input and output normalisations."""

import equinox as eqx
from jaxtyping import Array, Float

from ._normaliser import UnitGaussianNormaliser


class NormalisedOperator(eqx.Module):
    r"""$x \mapsto D_{out}(G(E_{in}(x)))$: the operator $G$ sees normalised
    inputs and produces normalised outputs, while the caller (and the loss)
    works in physical units, as in the FNO paper's training.

    The normalisers' statistics are fitted once on the training data and are
    never trained: ``operators.fit`` leaves every ``UnitGaussianNormaliser``
    unchanged. Fit them with ``pointwise=False`` to evaluate at resolutions
    other than the training one.

    Args:
        operator: the model, acting on one sample (channels, grid...).
        input_normaliser, output_normaliser: fitted normalisers, or None for
            the identity.
    """

    operator: eqx.Module
    input_normaliser: UnitGaussianNormaliser | None = None
    output_normaliser: UnitGaussianNormaliser | None = None

    def __call__(self, x: Float[Array, "c ..."]) -> Float[Array, "o ..."]:
        if self.input_normaliser is not None:
            x = self.input_normaliser.encode(x)
        y = self.operator(x)
        if self.output_normaliser is not None:
            y = self.output_normaliser.decode(y)
        return y
