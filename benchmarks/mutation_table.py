"""Per-module mutation score of a ``make mutation`` run (mutmut 3), as a markdown table.

Reads ``mutmut results --all true`` in the run's folder (default ``outputs/mutation``),
groups the mutants by module and prints, per module and in total: mutants, killed,
timeout (an infinite loop the tests stopped: counted as detected), survived, no tests,
equivalent (the mutants listed in ``EQUIVALENT`` below, reviewed by hand: same observable
behaviour) and the score ``(killed + timeout) / (mutants - equivalent)``. Then the list of
equivalent mutants with their reasons, and the surviving mutants not marked equivalent.

    python benchmarks/mutation_table.py [--dir outputs/mutation] [--out docs/mutation_table.md]

The names in ``EQUIVALENT`` are those of the run recorded in docs/mutation.md; mutmut
numbers a function's mutants in order, so an edit of a function renumbers its mutants and
its entries here must be reviewed again (an entry whose mutant is killed or gone is
reported as stale).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Reasons, reused by several mutants.
DTYPE = "np.asarray/np.zeros/astype without the float/int dtype: every later operation gives the same values for the inputs the callers pass"
REPLACE_NONE = "rng.choice(replace=None): None is falsy, the same as replace=False"
NORMALISED = "scaled by a constant that a later normalisation divides out"
UNREACHABLE_TOL = "differs only at exactly the tolerance, or for float round-off above 1e-9 that cannot occur"
LIBRARY_DEFAULT = "the argument dropped or changed equals the library's default (or its case-insensitive spelling)"

EQUIVALENT: dict[str, str] = {
    # fedsim/server/aggregation.py
    "fedsim.server.aggregation.x_average_arrays__mutmut_12": "plain mean with factors 1.0 * n instead of 1 / n: " + NORMALISED,
    "fedsim.server.aggregation.x_average_arrays__mutmut_13": "plain mean with factors 2 / n: " + NORMALISED,
    "fedsim.server.aggregation.x_average_arrays__mutmut_16": "weights without dtype=float: factors / factors.sum() is float either way",
    "fedsim.server.aggregation.x_average_arrays__mutmut_18": "weights without dtype=float: factors / factors.sum() is float either way",
    "fedsim.server.aggregation.x_average_arrays__mutmut_27": "astype(None) is astype(float64)",
    # fedsim/server/validation.py
    "fedsim.server.validation.x__check_arrays__mutmut_11": "np.issubdtype(None, floating) is True (None means float64): the finiteness check then also runs on integer arrays, which are always finite",
    # fedsim/compare/stats.py
    "fedsim.compare.stats.x_sign_flip_p__mutmut_3": "diffs without dtype=float: the same for numeric input (differs only for None, where the original returns p = 0: see Problems in docs/mutation.md)",
    "fedsim.compare.stats.x_sign_flip_p__mutmut_5": "as _3",
    "fedsim.compare.stats.x_sign_flip_p__mutmut_27": "> instead of >= against observed - tolerance: differs only for a mean exactly at that threshold",
    "fedsim.compare.stats.x_holm__mutmut_20": "argsort kind: tied p-values get the same Holm value in either order (the running max)",
    "fedsim.compare.stats.x_holm__mutmut_22": "as _20",
    "fedsim.compare.stats.x_holm__mutmut_24": "as _20 ('STABLE' is read case-insensitively)",
    "fedsim.compare.stats.x_seeds_needed__mutmut_2": "n_max 100001: above 200 the search steps by n // 50 (..., 99761, 101756) and never lands on 100001",
    "fedsim.compare.stats.x_seeds_needed__mutmut_30": "max(2, n // 50): the branch runs only for n >= 200, where n // 50 >= 4",
    "fedsim.compare.stats.x_paired__mutmut_16": "groupby(sort=None): None is falsy, pandas keeps the order of appearance as with sort=False",
    "fedsim.compare.stats.x_paired__mutmut_170": "exp of a non-finite bound: the log-ratio bounds are NaN or finite, never infinite, and exp(NaN) is NaN",
    "fedsim.compare.stats.x_paired__mutmut_174": "as _170",
    "fedsim.compare.stats.x_verdict__mutmut_13": "mean >= 0: the verdict branch needs an interval that excludes 0, and the mean lies inside it, so it is never 0",
    # fedsim/data/partitioners.py
    "fedsim.data.partitioners.x__check_alpha__mutmut_12": 'float("NAN") is NaN too',
    "fedsim.data.partitioners.x_dirichlet_split__mutmut_6": 'any underflow other than "redraw" spreads the class uniformly',
    "fedsim.data.partitioners.x_dirichlet_split__mutmut_7": "as _6",
    "fedsim.data.partitioners.x_dirichlet_split__mutmut_36": "sizes as float zeros: the same counts and comparisons",
    "fedsim.data.partitioners.x_dirichlet_split__mutmut_38": "as _36",
    "fedsim.data.partitioners.x_dirichlet_split__mutmut_79": "uniform spread multiplied instead of divided by the count: " + NORMALISED,
    "fedsim.data.partitioners.x_dirichlet_split__mutmut_84": "max(count, 2): " + NORMALISED + " (and with no open client both give 0 / 0)",
    "fedsim.data.partitioners.xǁGroupsPartitionerǁsplit__mutmut_23": 'underflow None: anything but "redraw" is the uniform rule',
    "fedsim.data.partitioners.xǁGroupsPartitionerǁsplit__mutmut_24": "as _23",
    "fedsim.data.partitioners.xǁGroupsPartitionerǁsplit__mutmut_25": "as _23",
    "fedsim.data.partitioners.xǁShardsPartitionerǁsplit__mutmut_13": "'STABLE' is read case-insensitively by numpy",
    "fedsim.data.partitioners.xǁFlwrDatasetsPartitionerǁsplit__mutmut_29": "row indices read back from the table are integers already",
    "fedsim.data.partitioners.xǁFlwrDatasetsPartitionerǁsplit__mutmut_31": "as _29",
    # fedsim/selection/powd.py
    "fedsim.selection.powd.xǁPowerOfChoiceSamplerǁ__init____mutmut_22": 'float("INF") is inf',
    # fedsim/selection/clustered.py
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_3": "shares without dtype: p / p.sum() is float",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_5": "as _3",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_24": "distances without dtype: 0.5 * (d + d.T) is float",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_26": "as _24",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_29": "1.5 instead of 0.5 times the symmetrised distances: Ward's merge order does not change when all distances are scaled, and the heights are replaced by shares",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_32": "diagonal set to NaN, then nan_to_num makes it 0",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_35": "squareform(checks=False) drops the diagonal",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_45": "nan_to_num's default nan is 0.0",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_54": "squareform checks on a matrix that is symmetric with a zero diagonal by construction",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_56": "as _54",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_57": "as _54",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_63": "one unused extra slot in the weights",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_100": "'STABLE' is read case-insensitively by numpy",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_130": "room += put: a flat cluster of two or more clients holds mass <= 1 (the cut), so the room never binds; a one-client cluster has one step",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_131": "a pending entry with nothing left places nothing",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_132": UNREACHABLE_TOL,
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_143": UNREACHABLE_TOL,
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_144": "row <= k is reached only when every row is full with mass left over: " + UNREACHABLE_TOL,
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_148": UNREACHABLE_TOL,
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_158": "= instead of +=: a pending client gets at most one share per row, and never in its own full row",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_162": UNREACHABLE_TOL,
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_163": "the round-off branch: " + UNREACHABLE_TOL,
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_164": "as _163",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_165": "as _163",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_166": "as _163",
    "fedsim.selection.clustered.x_fraboni_distributions__mutmut_167": "rows already sum to 1: multiplying by the row sum equals dividing by it up to round-off",
    "fedsim.selection.clustered.xǁClusteredSamplerǁchoose__mutmut_16": "as fraboni _167: each row sums to 1",
    # fedsim/selection/divfl.py
    "fedsim.selection.divfl.x_facility_location_cost__mutmut_4": 'float("INF") is inf',
    "fedsim.selection.divfl.x_facility_location_greedy_from_distances__mutmut_3": "distances without dtype: sums and minima give the same values",
    "fedsim.selection.divfl.x_facility_location_greedy_from_distances__mutmut_5": "as _3",
    "fedsim.selection.divfl.x_facility_location_greedy_from_distances__mutmut_13": "candidate ids are integers already",
    "fedsim.selection.divfl.x_facility_location_greedy_from_distances__mutmut_15": "as _13",
    "fedsim.selection.divfl.x_facility_location_greedy_from_distances__mutmut_38": "subset == all remaining: the pool is a random permutation of them, the same candidates, ties already random",
    "fedsim.selection.divfl.x_facility_location_greedy_from_distances__mutmut_42": REPLACE_NONE,
    "fedsim.selection.divfl.xǁDivFLSamplerǁprobe_candidates__mutmut_6": "each id goes through int() anyway",
    "fedsim.selection.divfl.xǁDivFLSamplerǁprobe_candidates__mutmut_8": "as _6",
    "fedsim.selection.divfl.xǁDivFLSamplerǁchoose__mutmut_10": "a non-empty sorted list of int ids gives an int array anyway (the empty case returns before)",
    "fedsim.selection.divfl.xǁDivFLSamplerǁchoose__mutmut_12": "as _10",
    "fedsim.selection.divfl.xǁDivFLSamplerǁchoose__mutmut_34": "gradients without dtype: pairwise_distances converts to float64",
    "fedsim.selection.divfl.xǁDivFLSamplerǁchoose__mutmut_36": "as _34",
    # fedsim/selection/fedcor.py
    "fedsim.selection.fedcor.x_condition_on__mutmut_3": "covariance without dtype: the Schur complement is float either way",
    "fedsim.selection.fedcor.x_condition_on__mutmut_5": "as _3",
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_3": DTYPE,
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_5": DTYPE,
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_8": DTYPE,
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_10": DTYPE,
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_13": DTYPE,
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_15": DTYPE,
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_32": "a list of int ids gives an int array anyway",
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_34": "as _32",
    "fedsim.selection.fedcor.x_fedcor_greedy__mutmut_38": UNREACHABLE_TOL,
    "fedsim.selection.fedcor.x_gp_objective__mutmut_1": 'any objective other than "marginal" is leave-one-out',
    "fedsim.selection.fedcor.x_gp_objective__mutmut_2": "as _1",
    "fedsim.selection.fedcor.x_gp_objective__mutmut_30": "cho_factor upper instead of lower: cho_solve follows the flag and the factor's diagonal (log det) is the same",
    "fedsim.selection.fedcor.x_gp_objective__mutmut_32": "as _30",
    "fedsim.selection.fedcor.x_gp_objective__mutmut_33": "as _30",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁreset__mutmut_2": "beta None at reset: fit() sets it before any greedy round can use it",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁreset__mutmut_15": "_new_data None is falsy like False",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁreset__mutmut_16": "_new_data True at reset: no fit can run before history has data, and recording data sets it True anyway",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁprobe_candidates__mutmut_4": "each id goes through int() anyway",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁprobe_candidates__mutmut_6": "as _4",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_14": "counts >= 0: a client with no finite change gets 0 / 1 = 0 either way",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_27": "the mean of a client with no finite change is only subtracted from NaNs",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_37": "scale 2 instead of 1 only when every centred change is 0, and 0 / 2 = 0 / 1",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_67": "noise upper bound 101 instead of 100: the changes are standardised to unit variance, the bound is never reached",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_68": "BLAS thread count: speed only",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_69": "as _68",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_75": "scipy.optimize.minimize picks L-BFGS-B itself for a bounded problem without constraints",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_82": "as _75 (method argument dropped)",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_87": "scipy lower-cases the method name",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁfit__mutmut_110": "_new_data None is falsy like False",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁchoose__mutmut_35": "getattr default: a greedy round always follows a fit, so _last_fit exists",
    "fedsim.selection.fedcor.xǁFedCorSamplerǁchoose__mutmut_38": "as _35",
    # fedsim/selection/base.py
    "fedsim.selection.base.xǁSamplerǁsetup__mutmut_3": "client sizes without dtype: every use divides them or converts them to float64",
    "fedsim.selection.base.xǁSamplerǁsetup__mutmut_5": "as _3",
    # fedsim/selection/draws.py
    "fedsim.selection.draws.x_draw_without_replacement__mutmut_15": "weights without dtype: weights / weights.sum() is float",
    "fedsim.selection.draws.x_draw_without_replacement__mutmut_17": "as _15",
    "fedsim.selection.draws.x_draw_without_replacement__mutmut_23": REPLACE_NONE,
    "fedsim.selection.draws.x_draw_from_clusters__mutmut_9": "client weights without dtype: divided by their sum",
    "fedsim.selection.draws.x_draw_from_clusters__mutmut_11": "as _9",
    "fedsim.selection.draws.x_draw_from_clusters__mutmut_26": "open-cluster mask as float 0/1: np.where reads it the same",
    "fedsim.selection.draws.x_draw_from_clusters__mutmut_28": "as _26",
    "fedsim.selection.draws.x_draw_from_clusters__mutmut_56": "None stored in a bool array is False",
    "fedsim.selection.draws.x_draw_one_per_row__mutmut_3": "distributions without dtype: np.where with 0.0 gives floats",
    "fedsim.selection.draws.x_draw_one_per_row__mutmut_5": "as _3",
    "fedsim.selection.draws.x_draw_one_per_row__mutmut_8": "unpicked mask as float 1/0: np.where and astype read it the same",
    "fedsim.selection.draws.x_draw_one_per_row__mutmut_10": "as _8",
    "fedsim.selection.draws.x_draw_one_per_row__mutmut_36": "astype(None) is astype(float64)",
    "fedsim.selection.draws.x_draw_one_per_row__mutmut_44": "None stored in a bool array is False",
    # fedsim/selection/geometry.py
    "fedsim.selection.geometry.x__angles_from_cosines__mutmut_10": "cosine 2.0 is clipped to 1.0 before arccos",
    "fedsim.selection.geometry.x__angles_from_cosines__mutmut_15": "as _10",
    "fedsim.selection.geometry.x_angles_between__mutmut_3": "vectors without dtype: norm and unit_rows convert to float64",
    "fedsim.selection.geometry.x_angles_between__mutmut_5": "as _3",
    "fedsim.selection.geometry.x_angles_from_gram__mutmut_3": "Gram matrix without dtype: clip with 0.0 and the division give float64",
    "fedsim.selection.geometry.x_angles_from_gram__mutmut_5": "as _3",
    "fedsim.selection.geometry.x_angles_from_gram__mutmut_9": "no clip at 0: a Gram matrix's diagonal is a sum of squares, never negative",
    "fedsim.selection.geometry.x_angles_from_gram__mutmut_25": "the stand-in norm of a zero update: its cosines are overwritten by the zero-update rule",
    "fedsim.selection.geometry.x_pairwise_distances__mutmut_12": "reshape(len, -2): numpy reads any negative size as 'infer'",
    # fedsim/selection/updates.py
    "fedsim.selection.updates.xǁLatestUpdatesǁstore__mutmut_6": "the vector is stored into the float32 array anyway",
    "fedsim.selection.updates.xǁLatestUpdatesǁstore__mutmut_8": "as _6",
    "fedsim.selection.updates.xǁLatestUpdatesǁstore__mutmut_21": "astype(None) is astype(float64)",
    "fedsim.selection.updates.xǁLatestUpdatesǁstore__mutmut_22": "as _21",
    # fedsim/selection/hics_oracle.py
    "fedsim.selection.hics_oracle.xǁHiCSOracleSamplerǁreceive_label_distributions__mutmut_3": "histograms without dtype: counts / counts.sum() is float",
    "fedsim.selection.hics_oracle.xǁHiCSOracleSamplerǁreceive_label_distributions__mutmut_5": "as _3",
    "fedsim.selection.hics_oracle.xǁHiCSOracleSamplerǁreceive_label_distributions__mutmut_26": "shares >= 0 in the outer where: a zero share contributes 0 * log(1) = 0 either way",
    "fedsim.selection.hics_oracle.xǁHiCSOracleSamplerǁreceive_label_distributions__mutmut_38": "log(2) instead of log(1) for a zero share, multiplied by that zero share",
    "fedsim.selection.hics_oracle.xǁHiCSOracleSamplerǁreceive_label_distributions__mutmut_46": "_signal unused by the oracle: entropies() and observe() are overridden",
    # fedsim/selection/hics.py
    "fedsim.selection.hics.x_estimate_entropy__mutmut_4": "updates without dtype: divided by the temperature, so float",
    "fedsim.selection.hics.x_estimate_entropy__mutmut_6": "as _4",
    "fedsim.selection.hics.x_estimate_entropy__mutmut_34": "without float(): a single update's entropy is a numpy float64, itself a float",
    "fedsim.selection.hics.x_ward_clusters__mutmut_9": LIBRARY_DEFAULT,
    "fedsim.selection.hics.x_ward_clusters__mutmut_10": LIBRARY_DEFAULT,
    "fedsim.selection.hics.x_ward_clusters__mutmut_18": "all warnings muted instead of ClusterWarning only: the clustering raises no other warning on finite distances",
    "fedsim.selection.hics.x_ward_clusters__mutmut_23": "scikit-learn converts the rows to float64",
    "fedsim.selection.hics.x_ward_clusters__mutmut_25": "as _23",
    "fedsim.selection.hics.x_positive_part_entropy__mutmut_8": "np.clip(ints, 0.0, None) is float64 already",
    "fedsim.selection.hics.x_positive_part_entropy__mutmut_10": "as _8",
    "fedsim.selection.hics.x_positive_part_entropy__mutmut_50": "log(2) instead of log(1) where p = 0, multiplied by that p",
    "fedsim.selection.hics.x_positive_part_entropy__mutmut_57": "as estimate_entropy _34",
    "fedsim.selection.hics.x_cluster_probabilities__mutmut_4": "gamma * entropies then exp: float either way",
    "fedsim.selection.hics.x_cluster_probabilities__mutmut_6": "as _4",
    "fedsim.selection.hics.xǁHiCSSamplerǁreset__mutmut_13": '_direction "" instead of None: replaced by an array at the first report, before any use',
    "fedsim.selection.hics.xǁHiCSSamplerǁreset__mutmut_14": '_centroids "" instead of None: scalable_clusters ignores an init of the wrong shape',
    "fedsim.selection.hics.xǁHiCSSamplerǁreset__mutmut_18": "np.full(n, -1) is int64 by default",
    "fedsim.selection.hics.xǁHiCSSamplerǁreset__mutmut_21": "as _18",
    "fedsim.selection.hics.xǁHiCSSamplerǁreset__mutmut_23": "-2 instead of -1 for never picked: any value below round 1 sorts the same",
    "fedsim.selection.hics.xǁHiCSSamplerǁobserve__mutmut_19": "multiplied by a float scale: float either way",
    "fedsim.selection.hics.xǁHiCSSamplerǁobserve__mutmut_21": "as _19",
    "fedsim.selection.hics.xǁHiCSSamplerǁobserve__mutmut_25": "as _19",
    "fedsim.selection.hics.xǁHiCSSamplerǁobserve__mutmut_27": "as _19",
    "fedsim.selection.hics.xǁHiCSSamplerǁchoose__mutmut_39": REPLACE_NONE,
    "fedsim.selection.hics.xǁHiCSSamplerǁchoose__mutmut_68": "_informed_draw does not use its server_round argument",
    "fedsim.selection.hics.xǁHiCSSamplerǁchoose__mutmut_80": "least_recently_picked(..., 0) returns []",
    "fedsim.selection.hics.xǁHiCSSamplerǁ_informed_draw__mutmut_119": "np.full(n, None) is an object array already",
    "fedsim.selection.hics.xǁHiCSSamplerǁ_informed_draw__mutmut_122": "as _119",
    # fedsim/selection/hics_scalable.py
    "fedsim.selection.hics_scalable.x_cross_distances__mutmut_23": "cosine 2.0 between two zero directions is clipped to 1.0 before arccos",
    "fedsim.selection.hics_scalable.x_landmark_profiles__mutmut_3": "embedding without dtype: micro_clusters and unit_rows convert to float64, and the entropy column meets float64 centroids",
    "fedsim.selection.hics_scalable.x_landmark_profiles__mutmut_5": "as _3",
    "fedsim.selection.hics_scalable.x_landmark_profiles__mutmut_19": "astype(None) is astype(float64)",
    "fedsim.selection.hics_scalable.x_ward_micro_clusters__mutmut_4": DTYPE,
    "fedsim.selection.hics_scalable.x_ward_micro_clusters__mutmut_6": DTYPE,
    "fedsim.selection.hics_scalable.x_ward_micro_clusters__mutmut_16": LIBRARY_DEFAULT,
    "fedsim.selection.hics_scalable.x_ward_micro_clusters__mutmut_30": LIBRARY_DEFAULT,
    "fedsim.selection.hics_scalable.x_ward_micro_clusters__mutmut_37": "all warnings muted instead of the disconnected-graph one only: with a connectivity graph scikit-learn's Ward raises no other warning",
    "fedsim.selection.hics_scalable.x_ward_micro_clusters__mutmut_41": "warning filters match the message case-insensitively",
    "fedsim.selection.hics_scalable.x_micro_clusters__mutmut_4": DTYPE,
    "fedsim.selection.hics_scalable.x_micro_clusters__mutmut_6": DTYPE,
    "fedsim.selection.hics_scalable.x_micro_clusters__mutmut_24": "n_init dropped: scikit-learn's default 'auto' is one run for k-means++ and for an init array",
    "fedsim.selection.hics_scalable.x_micro_clusters__mutmut_30": "init without dtype: KMeans converts it to the data's dtype (float64)",
    "fedsim.selection.hics_scalable.x_micro_clusters__mutmut_32": "as _30",
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_3": DTYPE,
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_5": DTYPE,
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_8": DTYPE,
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_10": DTYPE,
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_12": "num_clusters == m: the full tree is built but no merge applied, so labels arange(m) either way",
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_21": "3.0 instead of 2.0: every Ward distance scaled by 1.5, and the Lance-Williams update is linear in them, so the same merges (up to round-off)",
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_48": "len(chain) > 2: with two elements chain[-2] is the chain's start, the lowest active index, which argmin already picks on a tie",
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_49": "as _48",
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_65": "one more element dropped from the chain after a merge: the rest is still a nearest-neighbour chain, so the same pairs merge (more steps only)",
    "fedsim.selection.hics_scalable.x_weighted_ward__mutmut_82": "None stored in a bool array is False",
    "fedsim.selection.hics_scalable.x_scalable_clusters__mutmut_6": DTYPE,
    "fedsim.selection.hics_scalable.x_scalable_clusters__mutmut_8": DTYPE,
    "fedsim.selection.hics_scalable.x_scalable_clusters__mutmut_38": "astype(None) is astype(float64)",
    "fedsim.selection.hics_scalable.x_scalable_clusters__mutmut_78": "astype(None) is astype(float64)",
    "fedsim.selection.hics_scalable.x_scalable_clusters__mutmut_82": "bincount without minlength drops only trailing empty micro-clusters, which `used` leaves out anyway",
}


def results(run_dir: Path) -> list[tuple[str, str]]:
    """(mutant name, status) for every mutant of the run."""
    mutmut = ROOT / ".venv" / "bin" / "mutmut"
    out = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=run_dir, capture_output=True, text=True,
                         check=True).stdout
    rows = []
    for line in out.splitlines():
        match = re.match(r"\s*(\S+): (.+)$", line)
        if match:
            rows.append((match.group(1), match.group(2).strip()))
    return rows


def module_of(name: str) -> str:
    """``fedsim.selection.hics.xǁHiCSSamplerǁchoose__mutmut_3`` -> ``fedsim/selection/hics.py``."""
    head = re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]
    return head.replace(".", "/") + ".py"


def table(rows: list[tuple[str, str]]) -> str:
    by_module: dict[str, Counter] = defaultdict(Counter)
    for name, status in rows:
        counts = by_module[module_of(name)]
        counts["mutants"] += 1
        if status == "survived" and name in EQUIVALENT:
            counts["equivalent"] += 1
        else:
            counts[status] += 1
    lines = ["| module | mutants | killed | timeout | survived | no tests | equivalent | score |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    total: Counter = Counter()
    for module in sorted(by_module):
        c = by_module[module]
        total.update(c)
        lines.append(_row(f"`{module}`", c))
    lines.append(_row("**all**", total))
    other = {k for c in by_module.values() for k in c} - {
        "mutants", "killed", "timeout", "survived", "no tests", "equivalent"}
    if other:
        lines.append(f"\nOther statuses (counted as not detected): {', '.join(sorted(other))}")
    return "\n".join(lines)


def _row(label: str, c: Counter) -> str:
    detected = c["killed"] + c["timeout"]
    base = c["mutants"] - c["equivalent"]
    score = f"{100.0 * detected / base:.1f}%" if base else "-"
    return (f"| {label} | {c['mutants']} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['no tests']} "
            f"| {c['equivalent']} | {score} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "outputs" / "mutation", help="the run's MUTATION_DIR")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    rows = results(args.dir)
    status = dict(rows)
    parts = ["## Score per module", "", table(rows), "", "## Equivalent mutants", ""]
    for name in sorted(EQUIVALENT):
        parts.append(f"- `{name}`: {EQUIVALENT[name]}")
    stale = sorted(n for n in EQUIVALENT if status.get(n) != "survived")
    if stale:
        parts += ["", "Stale entries (not a surviving mutant of this run): " + ", ".join(f"`{n}`" for n in stale)]
    left = sorted(n for n, s in rows if s in ("survived", "no tests") and n not in EQUIVALENT)
    parts += ["", f"## Not killed, not equivalent ({len(left)})", ""] + [f"- `{n}` ({status[n]})" for n in left]
    text = "\n".join(parts) + "\n"
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
