"""Dataset generators for operator learning (Darcy, Burgers) and resumable datasets on disk."""

from ._burgers import BurgersSample as BurgersSample
from ._burgers import burgers_initial_condition as burgers_initial_condition
from ._burgers import burgers_samples as burgers_samples
from ._burgers import burgers_solve as burgers_solve
from ._burgers import periodic_subsample as periodic_subsample
from ._darcy import DarcySample as DarcySample
from ._darcy import darcy_coefficient as darcy_coefficient
from ._darcy import darcy_sample as darcy_sample
from ._darcy import darcy_samples as darcy_samples
from ._darcy import subsample as subsample
from ._dataset import load_dataset as load_dataset
from ._dataset import write_dataset as write_dataset
from ._linear_family import LinearFamilySample as LinearFamilySample
from ._linear_family import linear_family_samples as linear_family_samples
