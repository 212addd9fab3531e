"""Sequences of related systems: parameter-space orderings (SKR) and the recycled sequence solver."""

from ._ordering import fft_pca_order as fft_pca_order
from ._ordering import greedy_order as greedy_order
from ._ordering import hilbert_index as hilbert_index
from ._sequence import SequenceSolution as SequenceSolution
from ._sequence import solve_sequence as solve_sequence
