"""FedCor (Tang et al., CVPR 2022): correlation-based client selection with a GP.

The per-round change of every client's loss (loss of the new global model minus loss
of the previous one, on the client's data) is modelled as a Gaussian process over
clients: prior mean = each client's mean loss change over the kept history, covariance
``Sigma = E E^T + s^2 I`` with learned client embeddings ``E`` (N x embedding_dim, a
linear kernel) and a learned noise variance ``s^2``. The hyper-parameters maximise the
leave-one-out predictive log-likelihood (``objective="loo"``, as FedCor) or the
marginal likelihood (``objective="marginal"``), with analytic gradients and L-BFGS-B.

Selection is greedy: repeatedly pick the available client with the largest
``beta_k * (sum_i p_i Sigma_ik) / sqrt(Sigma_kk)`` (how much observing client k moves the
data-weighted total loss change, per standard deviation), then condition Sigma on that
client (Schur complement). ``beta`` (FedCor's discount) of each greedily selected client
decays by ``beta_decay``; it is reset to 1 whenever the GP is refit (as in the authors'
code).

Schedule (rounds are 1-based, W = warmup_rounds, R = refit_every):
- rounds 1..W are random (by data share) and every available client is probed each
  round, so consecutive probes give the loss changes of every warm-up round;
- afterwards round r is random again when ``(r - W) % R == 0``; every available client
  is probed in that round and the next, which gives the loss changes caused by that
  random round, and the GP is refit (in the next round, before its greedy selection).
  FedCor's code instead trains a throw-away random round on the side; a Flower
  simulation can't, so the random round is a real one;
- all other rounds are greedy.
The loss changes are learnt only from random rounds, so the GP describes how clients'
losses move together under unbiased participation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from fedsim.selection.base import ProbeReport, Sampler
from fedsim.selection.draws import draw_without_replacement

_LOG_2PI = float(np.log(2.0 * np.pi))


# ---------------------------------------------------------------------- greedy selection
def condition_on(sigma: np.ndarray, k: int) -> np.ndarray:
    """Covariance after observing client ``k``: ``Sigma - Sigma[:, k] Sigma[k, :] / Sigma_kk``."""
    sigma = np.asarray(sigma, dtype=np.float64)
    col = sigma[:, k].copy()
    if sigma[k, k] <= 0.0:
        return sigma.copy()
    out = sigma - np.outer(col, col) / sigma[k, k]
    out = 0.5 * (out + out.T)
    out[k, :] = 0.0
    out[:, k] = 0.0
    return out


def fedcor_greedy(
    sigma: np.ndarray,
    weights: np.ndarray,
    beta: np.ndarray,
    k: int,
    candidates: np.ndarray | None = None,
) -> tuple[list[int], np.ndarray]:
    """FedCor's greedy selection: K picks, conditioning the covariance after each.

    Parameters
    ----------
    sigma : (N, N) prior covariance of the loss changes.
    weights : (N,) p_i, the weights of the total loss change.
    beta : (N,) per-client discount.
    k : number of clients to pick.
    candidates : indices that may be picked (default: all).

    Returns the picked indices (distinct, in order) and the final conditioned covariance.
    """
    sigma = np.asarray(sigma, dtype=np.float64).copy()
    weights = np.asarray(weights, dtype=np.float64)
    beta = np.asarray(beta, dtype=np.float64)
    remaining = list(range(len(sigma))) if candidates is None else [int(c) for c in candidates]
    chosen: list[int] = []
    for _ in range(min(int(k), len(remaining))):
        idx = np.array(remaining, dtype=int)
        diag = np.diag(sigma)[idx]
        ok = diag > 1e-12
        scores = np.full(len(idx), -np.inf)
        scores[ok] = beta[idx[ok]] * (weights @ sigma[:, idx[ok]]) / np.sqrt(diag[ok])
        pick = int(idx[int(np.argmax(scores))])  # all -inf (nothing left to learn): first remaining
        chosen.append(pick)
        remaining.remove(pick)
        sigma = condition_on(sigma, pick)
    return chosen, sigma


# ---------------------------------------------------------------------- GP fitting
def gp_objective(
    params: np.ndarray,
    groups: list[tuple[np.ndarray, np.ndarray]],
    num_clients: int,
    dim: int,
    objective: Literal["loo", "marginal"] = "loo",
    ridge: float = 1e-3,
) -> tuple[float, np.ndarray]:
    """Negative log-likelihood (LOO or marginal) and its gradient.

    ``params`` = [E.ravel() (N*dim), log s^2]; ``groups`` = [(ids, Y)] where ``Y`` is
    (len(ids), T_g): T_g loss-change vectors observed on the same clients ``ids``
    (already centred). A small ridge ``ridge * ||E||^2`` keeps the embeddings bounded.
    """
    emb = params[:-1].reshape(num_clients, dim)
    s2 = float(np.exp(params[-1]))
    loglik = 0.0
    grad_emb = np.zeros_like(emb)
    grad_logs2 = 0.0
    for ids, y in groups:
        e = emb[ids]
        n, t = y.shape
        kmat = e @ e.T + s2 * np.eye(n)
        try:
            chol = cho_factor(kmat, lower=True)
        except np.linalg.LinAlgError:  # a step to a singular covariance: tell the line search to back off
            return np.inf, np.zeros_like(params)
        a = cho_solve(chol, np.eye(n))  # K^{-1}
        alpha = a @ y
        if objective == "marginal":
            logdet = 2.0 * np.log(np.diag(chol[0])).sum()
            loglik += -0.5 * float((y * alpha).sum()) - 0.5 * t * logdet - 0.5 * n * t * _LOG_2PI
            g = 0.5 * (alpha @ alpha.T - t * a)
        else:
            c = np.diag(a)
            loglik += float((0.5 * np.log(c)[:, None] - 0.5 * alpha**2 / c[:, None]).sum()) - 0.5 * n * t * _LOG_2PI
            d_c = 0.5 * t / c + 0.5 * (alpha**2).sum(axis=1) / c**2
            d_alpha = -alpha / c[:, None]
            h = np.diag(d_c) + d_alpha @ y.T  # dL/dK^{-1}
            g = -0.5 * a @ (h + h.T) @ a  # dL/dK (symmetric)
        np.add.at(grad_emb, ids, 2.0 * g @ e)
        grad_logs2 += s2 * float(np.trace(g))
    value = -loglik + ridge * float((emb**2).sum())
    grad = np.concatenate([(-grad_emb + 2.0 * ridge * emb).ravel(), [-grad_logs2]])
    return value, grad


class FedCorSampler(Sampler):
    """FedCor: GP over clients' loss changes, greedy correlation-aware selection.

    Parameters
    ----------
    warmup_rounds : int
        W random rounds in which every available client reports its loss.
    refit_every : int
        After warm-up, every R-th round is random and the GP is refit on the loss changes
        it causes (0 or less: never refit).
    beta_decay : float
        Discount factor applied to a client's beta each time it is greedily selected.
    embedding_dim : int
        Dimension of the learned client embeddings (rank of the linear kernel).
    objective : "loo" | "marginal"
        Fit criterion: leave-one-out predictive likelihood (FedCor) or marginal likelihood.
    history_length : int
        Number of most recent loss-change vectors kept for fitting.
    fit_iterations : int
        L-BFGS-B iterations per fit (warm-started from the previous fit).
    """

    def __init__(
        self,
        warmup_rounds: int = 25,
        refit_every: int = 5,
        beta_decay: float = 0.9,
        embedding_dim: int = 15,
        objective: Literal["loo", "marginal"] = "loo",
        history_length: int = 25,
        fit_iterations: int = 100,
    ) -> None:
        if objective not in ("loo", "marginal"):
            raise ValueError(f"unknown objective {objective!r}")
        for name, value, low in (("warmup_rounds", warmup_rounds, 0), ("embedding_dim", embedding_dim, 1),
                                 ("history_length", history_length, 1), ("fit_iterations", fit_iterations, 1)):
            if int(value) < low:
                raise ValueError(f"sampler.{name}={value}: must be a whole number >= {low}")
        if not 0.0 < float(beta_decay) <= 1.0:  # NaN fails too
            raise ValueError(f"sampler.beta_decay={beta_decay}: must be in (0, 1]")
        self.warmup_rounds = int(warmup_rounds)
        self.refit_every = int(refit_every)
        self.beta_decay = float(beta_decay)
        self.embedding_dim = int(embedding_dim)
        self.objective = objective
        self.history_length = int(history_length)
        self.fit_iterations = int(fit_iterations)

    def reset(self) -> None:
        """Reset the loss history, the GP and the discounts."""
        n = self.num_clients
        self.beta = np.ones(n)
        self.losses: dict[int, np.ndarray] = {}  # round -> losses at its start (NaN: unknown)
        self.history: list[np.ndarray] = []  # loss-change vectors (NaN: unknown)
        self._params = np.concatenate(
            [self.rng.normal(size=n * self.embedding_dim) / np.sqrt(self.embedding_dim), [np.log(0.1)]]
        )
        self.sigma: np.ndarray | None = None
        self._new_data = False

    # ------------------------------------------------------------------ schedule
    def is_random_round(self, server_round: int) -> bool:
        """Warm-up rounds and every ``refit_every``-th round after it."""
        if server_round <= self.warmup_rounds:
            return True
        return self.refit_every > 0 and (server_round - self.warmup_rounds) % self.refit_every == 0

    def is_probe_round(self, server_round: int) -> bool:
        """A random round, or the round right after one (to measure its loss changes)."""
        return self.is_random_round(server_round) or (server_round > 1 and self.is_random_round(server_round - 1))

    def probe_candidates(self, server_round: int, available: np.ndarray) -> list[int]:
        """Every available client in probe rounds; none otherwise."""
        if self.is_probe_round(server_round):
            return [int(a) for a in np.asarray(available, dtype=int)]
        return []

    # ------------------------------------------------------------------ GP
    def _record_losses(self, server_round: int, probes: dict[int, ProbeReport]) -> None:
        if not probes:
            return
        losses = np.full(self.num_clients, np.nan)
        for pid, probe in probes.items():
            losses[int(pid)] = probe.loss
        self.losses[server_round] = losses
        prev = self.losses.get(server_round - 1)
        if prev is not None and self.is_random_round(server_round - 1):
            change = losses - prev
            if np.isfinite(change).sum() >= 2:
                self.history.append(change)
                self.history = self.history[-self.history_length:]
                self._new_data = True
        for r in [r for r in self.losses if r < server_round - 1]:
            del self.losses[r]

    def fit(self) -> None:
        """Fit embeddings and noise on the kept loss changes; set ``self.sigma``."""
        data = np.stack(self.history)  # (T, N)
        counts = np.isfinite(data).sum(axis=0)
        mean = np.where(counts > 0, np.nansum(data, axis=0) / np.maximum(counts, 1), 0.0)
        centred = data - mean
        if not np.any(np.nan_to_num(centred)):  # one vector per client so far: nothing to learn a covariance from
            self._new_data = False
            return
        scale = float(np.sqrt(np.nanmean(centred**2))) or 1.0
        centred = centred / scale
        groups: dict[bytes, tuple[np.ndarray, list[np.ndarray]]] = {}
        for row in centred:
            mask = np.isfinite(row)
            key = mask.tobytes()
            groups.setdefault(key, (np.flatnonzero(mask), []))[1].append(row[mask])
        packed = [(ids, np.stack(rows, axis=1)) for ids, rows in groups.values() if len(ids) >= 2]
        n, dim = self.num_clients, self.embedding_dim
        bounds = [(None, None)] * (n * dim) + [(np.log(1e-6), np.log(1e2))]
        # Small (N x N) matrices: one BLAS thread is much faster than several on shared cores.
        with threadpool_limits(limits=1):
            result = minimize(
                gp_objective,
                self._params,
                args=(packed, n, dim, self.objective),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": self.fit_iterations},
            )
        if np.all(np.isfinite(result.x)):
            self._params = result.x
        emb = self._params[:-1].reshape(n, dim)
        self.sigma = emb @ emb.T + float(np.exp(self._params[-1])) * np.eye(n)
        self.beta = np.ones(n)
        self._new_data = False
        self._last_fit = {"fit_value": float(result.fun), "fit_iterations": int(result.nit),
                          "noise_var": float(np.exp(self._params[-1])), "num_vectors": len(self.history)}

    # ------------------------------------------------------------------ selection
    def learn_from_probes(self, server_round: int, probes: dict[int, ProbeReport]) -> None:
        """Record the probed losses and refit the GP when new loss changes arrived."""
        self._record_losses(server_round, probes)
        if self._new_data and server_round > self.warmup_rounds and len(self.history) >= 1:
            self.fit()

    def choose(self, server_round: int, available: np.ndarray, count: int, probes: dict[int, ProbeReport]) -> list[int]:
        """Random in warm-up/refit rounds (or before any fit); greedy otherwise."""
        if self.is_random_round(server_round) or self.sigma is None:
            self.round_diagnostics = {"greedy": False}
            return draw_without_replacement(self.rng, available, count, self.client_sizes[available])
        chosen, _ = fedcor_greedy(self.sigma, self.data_shares, self.beta, count, candidates=available)
        self.beta[chosen] *= self.beta_decay
        self.round_diagnostics = {"greedy": True, **getattr(self, "_last_fit", {})}
        return [int(c) for c in chosen]
