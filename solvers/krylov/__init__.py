"""Krylov methods: CG, GMRES, GMRES-DR, GCRO-DR and recycled CG, with the Arnoldi and recycle-space machinery they share."""

from ._cg import CG as CG
from ._gcrodr import GCRODR as GCRODR
from ._gcrodr import GMRESDR as GMRESDR
from ._gmres import GMRES as GMRES
from ._recycle_state import RecycleState as RecycleState
from ._recycled_cg import RecycledCG as RecycledCG
