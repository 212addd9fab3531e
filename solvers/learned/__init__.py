"""Learned conjugate directions (DCDM): the direction network, its training, shipped weights and the solver that uses it."""

from ._direction_network import ConjugateDirectionNetwork as ConjugateDirectionNetwork
from ._direction_network import load_network as load_network
from ._direction_network import pretrained_network as pretrained_network
from ._direction_network import save_network as save_network
from ._direction_training import train_direction_network as train_direction_network
from ._learned_cd import LearnedConjugateDirections as LearnedConjugateDirections
from ._network_preconditioner import NetworkPreconditioner as NetworkPreconditioner
