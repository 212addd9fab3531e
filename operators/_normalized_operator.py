"""A neural operator between fixed input and output normalizations."""

import equinox as eqx
from jaxtyping import Array, Float

from ._normalizer import UnitGaussianNormalizer


class NormalizedOperator(eqx.Module):
    r"""$x \mapsto D_{out}(G(E_{in}(x)))$: the operator $G$ sees normalized
    inputs and produces normalized outputs, while the caller (and the loss)
    works in physical units, as in the FNO paper's training.

    The normalizers' statistics are fitted once on the training data and are
    never trained: ``operators.fit`` leaves every ``UnitGaussianNormalizer``
    unchanged. At resolutions other than the training one, pointwise
    statistics are resampled to the sample's grid by multilinear
    interpolation (see ``UnitGaussianNormalizer``: fit them with the data's
    ``grid`` convention); field-wide statistics (``pointwise=False``) need
    no resampling.

    ``ndim``, ``in_channels`` and ``out_channels`` are the wrapped
    operator's (None where it has none): ``fit`` and ``evaluate`` read
    ``ndim`` to accept data without a channel axis.

    Args:
        operator: the model, acting on one sample (channels, grid...).
        input_normalizer: fitted normalizer of the inputs, or None for the
            identity.
        output_normalizer: fitted normalizer of the outputs, or None for the
            identity.
    """

    operator: eqx.Module
    input_normalizer: UnitGaussianNormalizer | None = None
    output_normalizer: UnitGaussianNormalizer | None = None

    @property
    def ndim(self) -> int | None:
        return getattr(self.operator, "ndim", None)

    @property
    def in_channels(self) -> int | None:
        return getattr(self.operator, "in_channels", None)

    @property
    def out_channels(self) -> int | None:
        return getattr(self.operator, "out_channels", None)

    def __call__(self, x: Float[Array, "c ..."]) -> Float[Array, "o ..."]:
        if self.input_normalizer is not None:
            x = self.input_normalizer.encode(x)
        y = self.operator(x)
        if self.output_normalizer is not None:
            y = self.output_normalizer.decode(y)
        return y
