"""manifold-oracle reference: float64 (numpy/scipy) and mpmath truth for manifold optimizers.

Pure functions on arrays; imports nothing else of the project and never imports torch.
Everything public is importable from here, e.g. ``from manifold_oracle.reference import msign, FrobeniusSphere``.
"""

from .errors import (
    DegenerateGeometryError,
    InvalidInputError,
    NotAvailableError,
    OffManifoldError,
    OracleError,
    SolverError,
)
from .linalg import (
    SingularTriplet,
    frobenius_norm,
    inner,
    mclip,
    msign,
    nuclear_norm,
    numerical_rank,
    polar_factor,
    rank_threshold,
    singular_values,
    skew,
    spectral_norm,
    stable_rank,
    sym,
    top_singular_triplet,
)
from .manifolds import (
    Euclidean,
    FrobeniusSphere,
    Manifold,
    Oblique,
    Orthogonal,
    SpectralSphere,
    Sphere,
    Stiefel,
)
from .schedules import (
    SCHEDULES,
    Schedule,
    get_schedule,
    normaliser,
    ns_apply,
    ns_singular_value_map,
    polynomial_map,
    schedule_band,
)

__version__ = "0.1.0"

# Later modules (steepest, exact, optimizers, conditions, problems, generators, precise) add
# their public names below, one import block each.
from . import generators
from .generators import RANK_RTOL, haar_orthogonal, matrix_with_spectrum, random_matrix, spectrum
from .optimizers import (
    MACRO,
    MUON_PROFILES,
    SPEL,
    SSO,
    AdamW,
    Diagnostics,
    ManifoldMuon,
    Mano,
    Muon,
    MuonBall,
    MuonH,
    RiemannianSGD,
    State,
)
from . import conditions, optimizers, problems
from .conditions import ProblemConstants, check_hyperparameters, descent_monitor
from .problems import (
    MatrixSensing,
    Procrustes,
    ProjectionProblem,
    RayleighFrobenius,
    RayleighStiefel,
    TwoLayerNet,
)
# mpmath reference (reference.precise, e.g. reference.precise.msign(X, dps=50)) and the golden corpus
from . import golden, precise
from .golden import GoldenCase, GoldenChecksumError, GoldenCorpus, load_golden
# steepest-descent subproblems (MATH §6): exact solvers, certificates, cvxpy formulations
from . import exact, steepest
from .exact import solve_exact
from .steepest import METHODS, NORMS, Certificate, SteepestResult, certify, steepest_direction
# the one table of manifold kinds, the tangent constraints, the JSON encoding of results
from . import constraints, kinds, serialization, subproblem
from .kinds import KINDS, canonical_kind, kind_of, manifold_from_kind
