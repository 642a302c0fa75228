"""HiCS-FL: heterogeneity-guided client sampling (Chen & Vikalo, NeurIPS 2024).

Each client's output-layer bias update points towards its label distribution, so the
entropy of ``softmax(delta_b / T)`` estimates how balanced its data is (one class: low,
balanced: high, about ln C). After a warm-up in which every client reports once, the
server clusters clients by the angle between their updates plus ``lam`` times their
entropy gap, and samples clusters with probabilities ``softmax(gamma_t * mean entropy)``,
where ``gamma_t`` anneals to 0 (uniform over clusters) by the last round.

The paper is the default; every difference in the authors' code (GitHub
``CityChan/HiCS-FL``) is a constructor switch, see ``conf/sampler/hics_reference.yaml``.
Specification, with every switch and its source: ``docs/hics-fl.md``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.cluster.hierarchy import ClusterWarning
from sklearn.cluster import AgglomerativeClustering

from fedsim.selection.base import ClientReport, ProbeReport, Sampler
from fedsim.selection.clustered import TREE_FROM, fraboni_distributions
from fedsim.selection.draws import draw_from_clusters, draw_one_per_row, least_recently_picked
from fedsim.selection.geometry import hics_distance_matrix
from fedsim.selection.hics_scalable import DEFAULT_MICRO_CLUSTERS, hics_embedding, scalable_clusters


def estimate_entropy(updates: np.ndarray, temperature: float) -> np.ndarray | float:
    """H_hat = entropy(softmax(u / T)) in nats, along the last axis of ``updates``.

    Works on one update (C,) -> float or a stack (N, C) -> (N,). The softmax is computed
    in log space after subtracting the maximum, so tiny temperatures cannot overflow.
    An all-zero update gives ln C (it looks perfectly balanced).
    """
    z = np.asarray(updates, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    entropy = -(np.exp(log_p) * log_p).sum(axis=-1)
    return float(entropy) if entropy.ndim == 0 else entropy


def ward_clusters(distance: np.ndarray, num_clusters: int) -> np.ndarray:
    """Ward clustering of the ROWS of ``distance`` (Euclidean), as the authors' code does.

    Returns labels 0..M-1 per point. With at least as many clusters as points every
    point is its own cluster. SciPy warns that a square feature matrix looks like a
    distance matrix; here using the rows as features is intended, so that warning is muted.
    """
    n = len(distance)
    if num_clusters >= n:
        return np.arange(n)
    model = AgglomerativeClustering(n_clusters=num_clusters, metric="euclidean", linkage="ward")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ClusterWarning)
        return model.fit_predict(np.asarray(distance, dtype=np.float64))


def positive_part_entropy(updates: np.ndarray) -> np.ndarray | float:
    """Entropy (nats) of the normalised positive part of each update, along the last axis.

    A client's bias update is positive on the classes it holds more of than the model
    predicts, so ``max(u, 0) / sum(max(u, 0))`` is a label mix and its entropy a label
    heterogeneity estimate. It is scale-free: it does not drift as updates shrink while the
    model fits (the softmax estimate does, towards ln C). An update with no positive part
    gives ln C (no information: treated as balanced, as a zero update is by the softmax).
    """
    u = np.clip(np.asarray(updates, dtype=np.float64), 0.0, None)
    total = u.sum(axis=-1, keepdims=True)
    num_classes = u.shape[-1]
    p = np.divide(u, total, out=np.full_like(u, 1.0 / num_classes), where=total > 0)
    logs = np.log(np.where(p > 0, p, 1.0))
    entropy = -(p * logs).sum(axis=-1)
    return float(entropy) if entropy.ndim == 0 else entropy


NUMERIC_LIMITS = {
    "temperature": (1e-269, "the estimate divides updates by T: a float32 update (up to 3.4e38) over a smaller T "
                            "overflows float64"),
    "gamma0": (700.0, "cluster probabilities are exp(gamma_t * ...) up to a factor: a log-ratio past 745 "
                      "makes the least likely cluster's probability exactly 0 in float64"),
    "lam": (1e150, "Ward clustering squares distances (up to lam * ln C) and multiplies them by cluster sizes: "
                   "beyond this float64 overflows"),
}
"""The largest (smallest, for T) values of HiCS-FL's hyperparameters for which float64 stays finite."""


def annealed_gamma(gamma0: float, server_round: int, total_rounds: int) -> float:
    """gamma_t = gamma0 * (1 - t / T_R), floored at 0 for rounds past the budget."""
    return max(0.0, gamma0 * (1.0 - server_round / total_rounds))


def cluster_probabilities(mean_entropies: np.ndarray, gamma: float) -> np.ndarray:
    """pi_m = softmax_m(gamma * Hbar_m): more balanced clusters are likelier while gamma > 0."""
    z = gamma * np.asarray(mean_entropies, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


class HiCSSampler(Sampler):
    """HiCS-FL client sampling; paper behaviour by default, authors' code by switches.

    Parameters
    ----------
    temperature : T of the softmax in the entropy estimate (paper FMNIST 0.0025).
    gamma0 : initial annealing coefficient; gamma_t = gamma0 * (1 - t / T_R).
    lam : weight of the entropy gap in the clustering distance.
    num_clusters : M; None means M = K (clients per round).
    estimator : how the entropy is estimated: "bias" (softmax(delta_b / T), paper),
        "positive_part" (entropy of the normalised positive part of delta_b: scale-free,
        fedsim's variant, see :func:`positive_part_entropy`) or
        "weight_rows" (row means of delta_W, authors' code).
    annealing : "absolute" (paper: cluster probabilities softmax(gamma_t * Hbar_m)) or
        "relative" (fedsim's variant: gamma_t is divided by the spread max - min of the cluster
        mean entropies, so ``gamma_t`` is the log of the largest probability ratio between two
        clusters, whatever the scale of the estimates: no cluster can take all the slots).
    warmup_order : "random" (paper) or "index" (authors' code) order of first reports.
    refresh : True (paper) overwrites a client's stored update whenever it reports again;
        False (authors' code, multi-alpha settings) keeps its first report.
    within_cluster : "data_size" (paper, p_k) or "uniform" (authors' code) draw in a cluster.
    distance_on : angle on "bias" (paper) or "output_layer" = [vec(delta_W), delta_b].
    variance_fallback : authors' code only: when Var(H_hat) over the candidates is at least
        ``variance_threshold``, use Clustered Sampling (Fraboni alg. 2) on the HiCS
        distance matrix instead of entropy-guided sampling.
    variance_threshold : the threshold of that test (authors' code: 0.1).
    clients_after_warmup : how many clients a round trains once every available client has
        reported: "per_round" (K, the paper and the later versions of the authors' code) or
        "num_clusters" (M, one per cluster, as the oldest stored version of the code, commit
        fc48af3 of ``server/server_hics.py``, does; fewer than K when M < K).
    fallback_tree : what the fallback's Ward linkage reads (:func:`fraboni_distributions`'
        ``tree_from``): "distances" (the condensed distance matrix) or "rows" (each client's
        row of the N x N matrix as a point, as the authors' code passes the square matrix).
    normalize_by_steps : divide each reported update by its number of local SGD steps,
        so unequal client sizes do not shift H_hat (not in the paper).
    mode : "exact" (paper / authors' code: Ward on the rows of the N x N distance matrix,
        O(N^2) memory, about O(N^3) time) or "scalable" (cross-device: micro-clusters -
        Ward on a k-NN graph of landmark distance profiles up to 4 x ``micro_clusters``
        candidates, k-means of [unit direction, lam * H_hat] above, warm-started - then
        weighted Ward on at most ``micro_clusters`` of them; never builds the N x N matrix,
        see ``fedsim.selection.hics_scalable``). Equals "exact" when there are at most
        ``micro_clusters`` candidates. Not combinable with ``variance_fallback``, which
        needs the matrix.
    micro_clusters : scalable mode only: number of micro-clusters m (memory O(m^2));
        default ``DEFAULT_MICRO_CLUSTERS`` (500) of ``fedsim.selection.hics_scalable``.
    exploration_rate : r, fedsim's variant: after warm-up, round t gives
        ``floor(r t) - floor(r (t - 1))`` of its K slots (r per round on average, spread
        evenly) to the available clients picked longest ago (ties at random); the rest go to
        the entropy-guided draw. With every client available, any W consecutive rounds then
        pick at least min(N, floor(W r)) distinct clients (and train them, when every picked
        client is available and replies; a client that fails still counts as picked): if an
        exploration pick repeated a client inside the window, every other client was picked
        in between. With ``refresh`` True it thereby also keeps the stored updates fresh
        (with ``refresh`` False they stay frozen at the first report whatever is picked).
        0 (paper) turns it off.

    Clients that have never reported are never treated as balanced: every available one
    is sampled first (warm-up in rounds 1..ceil(N/K); later joiners in the next round).
    Clustering and sampling then run over the available clients that have reported.
    """

    def __init__(
        self,
        temperature: float = 0.0025,
        gamma0: float = 4.0,
        lam: float = 10.0,
        num_clusters: int | None = None,
        estimator: str = "bias",
        annealing: str = "absolute",
        warmup_order: str = "random",
        refresh: bool = True,
        within_cluster: str = "data_size",
        distance_on: str = "bias",
        variance_fallback: bool = False,
        variance_threshold: float = 0.1,
        fallback_tree: str = "distances",
        clients_after_warmup: str = "per_round",
        normalize_by_steps: bool = False,
        mode: str = "exact",
        micro_clusters: int = DEFAULT_MICRO_CLUSTERS,
        exploration_rate: float = 0.0,
    ) -> None:
        choices = {
            "estimator": (estimator, ("bias", "weight_rows", "positive_part")),
            "annealing": (annealing, ("absolute", "relative")),
            "warmup_order": (warmup_order, ("random", "index")),
            "within_cluster": (within_cluster, ("data_size", "uniform")),
            "distance_on": (distance_on, ("bias", "output_layer")),
            "mode": (mode, ("exact", "scalable")),
            "fallback_tree": (fallback_tree, TREE_FROM),
            "clients_after_warmup": (clients_after_warmup, ("per_round", "num_clusters")),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"HiCSSampler: {name}={value!r}, expected one of {allowed}")
        for name, value, low in (("temperature", temperature, None), ("gamma0", gamma0, 0.0), ("lam", lam, 0.0)):
            value = float(value)
            if not math.isfinite(value) or (value <= 0 if low is None else value < low):
                rule = "> 0" if low is None else f">= {low:g}"
                raise ValueError(f"hics.{name}={value}: must be a finite number {rule}")
            bound, why = NUMERIC_LIMITS[name]
            if (value < bound) if name == "temperature" else (value > bound):
                raise ValueError(f"hics.{name}={value:g}: must be {'>=' if name == 'temperature' else '<='} "
                                 f"{bound:g} ({why})")
        if num_clusters is not None and (isinstance(num_clusters, bool) or int(num_clusters) != num_clusters
                                         or num_clusters < 1):
            raise ValueError(f"hics.num_clusters={num_clusters}: must be a whole number >= 1 or null (= K)")
        if not 0 < float(variance_threshold) < math.inf:
            raise ValueError(f"variance_threshold={variance_threshold}: must be a finite number > 0")
        if int(micro_clusters) < 1:
            raise ValueError(f"micro_clusters={micro_clusters}: must be >= 1")
        if not 0 <= float(exploration_rate) < math.inf:
            raise ValueError(f"sampler.exploration_rate={exploration_rate}: must be a finite number >= 0")
        self.temperature = float(temperature)
        self.gamma0 = float(gamma0)
        self.lam = float(lam)
        self.num_clusters = num_clusters
        self.estimator = estimator
        self.annealing = annealing
        self.warmup_order = warmup_order
        self.refresh = bool(refresh)
        self.within_cluster = within_cluster
        self.distance_on = distance_on
        self.variance_fallback = bool(variance_fallback)
        self.variance_threshold = float(variance_threshold)
        self.fallback_tree = fallback_tree
        self.clients_after_warmup = clients_after_warmup
        self.normalize_by_steps = bool(normalize_by_steps)
        if mode == "scalable" and self.variance_fallback:
            raise ValueError(
                "HiCSSampler: mode='scalable' cannot be combined with variance_fallback=True "
                "(the Clustered-Sampling fallback needs the N x N distance matrix)"
            )
        self.mode = mode
        self.micro_clusters = int(micro_clusters)
        self.exploration_rate = float(exploration_rate)

    @classmethod
    def unread_params(cls, params: dict) -> set[str]:
        """Parameters these settings never read (they do not make two runs different; :mod:`fedsim.identity`)."""
        unread = set()
        if params.get("estimator") == "positive_part":
            unread.add("temperature")  # the scale-free estimate has no softmax
        if not params.get("variance_fallback"):
            unread.update({"variance_threshold", "fallback_tree"})
        if params.get("mode") != "scalable":
            unread.add("micro_clusters")
        return unread

    def reset(self) -> None:
        """Allocate per-client state; the update arrays get their width at the first report."""
        if self.num_clusters is not None and self.num_clusters > self.num_clients:
            raise ValueError(
                f"hics.num_clusters={self.num_clusters} exceeds the {self.num_clients} clients; "
                f"set hics.num_clusters <= num_clients (or null for K)"
            )
        if self.exploration_rate > self.clients_per_round:
            raise ValueError(
                f"sampler.exploration_rate={self.exploration_rate:g} exceeds the {self.clients_per_round} clients "
                f"per round; set it to at most clients_per_round"
            )
        self._reported = np.zeros(self.num_clients, dtype=bool)
        self._signal: np.ndarray | None = None  # (N, C): what the entropy is computed on
        self._direction: np.ndarray | None = None  # (N, D): what the angle is measured on
        self._centroids: np.ndarray | None = None  # scalable mode: micro-centroids for warm start
        self._last_picked = np.full(self.num_clients, -1, dtype=np.int64)  # round of each client's last pick

    def exploration_slots(self, server_round: int) -> int:
        """Slots of round t for the least recently picked: floor(r t) - floor(r (t - 1))."""
        rate = self.exploration_rate
        return math.floor(rate * server_round + 1e-9) - math.floor(rate * (server_round - 1) + 1e-9)

    # ----------------------------------------------------------------- state
    def entropies(self) -> np.ndarray:
        """H_hat per client (N,); NaN for clients that never reported."""
        h = np.full(self.num_clients, np.nan)
        if self._signal is not None:
            signal = self._signal[self._reported]
            h[self._reported] = (positive_part_entropy(signal) if self.estimator == "positive_part"
                                 else estimate_entropy(signal, self.temperature))
        return h

    def observe(self, server_round: int, reports: list[ClientReport]) -> None:
        """Store the reporters' updates (first report always; later ones if ``refresh``)."""
        for r in reports:
            k = r.partition_id
            if self._reported[k] and not self.refresh:
                continue
            scale = 1.0 / max(r.num_steps, 1) if self.normalize_by_steps else 1.0
            bias = np.asarray(r.bias_update, dtype=np.float64) * scale
            weight = np.asarray(r.weight_update, dtype=np.float64) * scale
            signal = weight.mean(axis=1) if self.estimator == "weight_rows" else bias
            direction = bias if self.distance_on == "bias" else np.concatenate([weight.ravel(), bias])
            if self._signal is None:
                self._signal = np.zeros((self.num_clients, signal.size))
                self._direction = np.zeros((self.num_clients, direction.size))
            self._signal[k] = signal
            self._direction[k] = direction
            self._reported[k] = True

    # ------------------------------------------------------------- selection
    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """Unreported available clients first, then the entropy-guided cluster draw."""
        entropies = self.entropies()
        entropy_list = entropies.tolist()  # vectorised: a per-client Python loop costs ~0.2 s at N = 100,000
        for k in np.flatnonzero(np.isnan(entropies)):
            entropy_list[k] = None
        self.round_diagnostics = {
            "entropy": entropy_list,
            "cluster": [None] * self.num_clients,
            "cluster_probabilities": [],
            "gamma_t": annealed_gamma(self.gamma0, server_round, self.num_rounds),
            "entropy_variance": None,
            "phase": "cluster",
        }

        pending = available[~self._reported[available]]
        if self.clients_after_warmup == "num_clusters" and not len(pending):
            count = min(count, self.num_clusters or self.clients_per_round)
        if self.warmup_order == "index":
            first = [int(k) for k in pending[:count]]
        else:
            first = [int(k) for k in self.rng.choice(pending, size=min(count, len(pending)), replace=False)]
        if first:
            self.round_diagnostics["phase"] = "warmup"
        candidates = available[self._reported[available]]
        rest = count - len(first)
        explore = 0 if first else min(self.exploration_slots(server_round), rest)
        informed = (self._informed_draw(server_round, candidates, entropies[candidates], rest - explore)
                    if rest > explore else [])
        explored = least_recently_picked(
            self.rng, np.setdiff1d(candidates, informed), self._last_picked, explore) if explore else []
        if self.exploration_rate:
            self.round_diagnostics["explored"] = explored
        chosen = first + informed + explored
        self._last_picked[chosen] = server_round
        return chosen

    def _informed_draw(
        self, server_round: int, candidates: np.ndarray, entropies: np.ndarray, count: int
    ) -> list[int]:
        """Cluster the reported candidates and draw ``count`` of them (or the fallback)."""
        if count >= len(candidates):
            return [int(k) for k in candidates]
        variance = float(np.var(entropies))
        diag = self.round_diagnostics
        diag["entropy_variance"] = variance
        num_clusters = self.num_clusters or self.clients_per_round
        if self.mode == "scalable":
            embedding = hics_embedding(self._direction[candidates], entropies, self.lam)
            labels, self._centroids = scalable_clusters(
                embedding, num_clusters, self.rng, self.lam, init=self._centroids, max_micro=self.micro_clusters
            )
        else:
            distance = hics_distance_matrix(self._direction[candidates], entropies, self.lam)
        if self.mode == "exact" and self.variance_fallback and variance >= self.variance_threshold:
            if diag["phase"] != "warmup":
                diag["phase"] = "fallback"
            shares = self.client_sizes[candidates] / self.client_sizes[candidates].sum()
            rows = fraboni_distributions(distance, shares, count, tree_from=self.fallback_tree)
            return [int(candidates[i]) for i in draw_one_per_row(self.rng, rows)]

        if self.mode == "exact":
            labels = ward_clusters(distance, num_clusters)
        mean_h = np.bincount(labels, weights=entropies) / np.bincount(labels)
        gamma = diag["gamma_t"]
        if self.annealing == "relative":  # gamma_t bounds the log-ratio of the likeliest to the least likely cluster
            spread = float(mean_h.max() - mean_h.min())
            gamma = gamma / spread if spread > 0 else 0.0
            diag["gamma_effective"] = gamma
        probs = cluster_probabilities(mean_h, gamma)
        weights = self.client_sizes[candidates] if self.within_cluster == "data_size" else None
        cluster = np.full(self.num_clients, None, dtype=object)
        cluster[candidates] = labels.tolist()
        diag["cluster"] = cluster.tolist()
        diag["cluster_probabilities"] = probs.tolist()
        return [int(candidates[i]) for i in draw_from_clusters(self.rng, labels, probs, count, weights)]
