"""Adapter for optax 0.2.8 ``optax.contrib.muon`` on JAX (CPU), target ``optax_muon``.

The harness speaks torch; this adapter converts at the boundary: every array reaches optax as
a JAX array (float32: JAX's default, x64 is left off as a user leaves it) and comes back as a
torch tensor. Layout: optax's weights are (in, out) — ``x @ W`` — so a harness matrix of shape
(m, n) is handed over unchanged and read as fan_in = m, fan_out = n (profile field
``weight_layout="flax"``; the shape scale √max(1, fan_out/fan_in) is transposed relative to
PyTorch). Conventions (``optax/contrib/_muon.py``): bias-corrected EMA momentum with the
bias-corrected Nesterov blend, ‖·‖_F + 1e-8 normalisation, KJ quintic ×5 in the input dtype,
weight decay added to the update before the learning rate, non-2-D arrays routed to AdamW.

``optimizer`` returns a small torch-optimizer-like wrapper (``step()`` reads ``p.grad`` and
writes ``p.data``) so the harness's optimizer checks drive optax exactly as a training loop
would drive ``tx.update`` + ``optax.apply_updates``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import Adapter


def _jnp(x: Any) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(x.detach().cpu().numpy())


def _torch(x: Any, like: Any) -> Any:
    import torch

    return torch.from_numpy(np.array(x)).to(like.dtype)


class OptaxStep:
    """torch-optimizer-like driver of ``optax.contrib.muon`` over torch parameters.

    One jitted optax transformation per parameter (a parameter whose ``grad`` is None is skipped,
    as torch optimizers do), built with ``optax.inject_hyperparams`` so that a group's
    ``lr``/``momentum``/``weight_decay`` can change between steps as a scheduler does.
    ``state_dict``/``load_state_dict`` checkpoint the optax states.
    """

    def __init__(self, params: list, nesterov: bool, defaults: dict[str, Any]) -> None:
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self._tx, self._update = _muon_tx(nesterov)
        self._opt: dict[int, Any] = {}
        self.state: dict[Any, dict[str, Any]] = {p: {} for g in self.param_groups for p in g["params"]}

    def step(self) -> None:
        import jax.numpy as jnp
        import optax

        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                w = _jnp(p.data)
                st = self._opt.get(id(p))
                if st is None:
                    st = self._tx.init(w)
                hp = dict(st.hyperparams)
                for key, name in (("lr", "learning_rate"), ("momentum", "beta"), ("weight_decay", "weight_decay")):
                    hp[name] = jnp.asarray(g[key], dtype=jnp.asarray(hp[name]).dtype)
                st = st._replace(hyperparams=hp)
                upd, st = self._update(_jnp(p.grad), st, w)
                self._opt[id(p)] = st
                p.data.copy_(_torch(optax.apply_updates(w, upd), p.data))
                mu = _find_mu(st)
                if mu is not None:
                    self.state[p]["momentum_buffer"] = _torch(mu, p.data)

    def zero_grad(self) -> None:
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def _order(self) -> list[Any]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint: the optax state per parameter index and the group hyperparameters."""
        order = self._order()
        idx = {id(p): i for i, p in enumerate(order)}
        return {"state": {idx[k]: {**self.state[order[idx[k]]], "optax": v} for k, v in self._opt.items()},
                "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        order = self._order()
        self._opt = {id(order[i]): v["optax"] for i, v in sd["state"].items()}
        for g, h in zip(self.param_groups, sd["param_groups"]):
            g.update(h)
        for i, v in sd["state"].items():
            mu = _find_mu(v["optax"])
            if mu is not None:
                self.state[order[i]]["momentum_buffer"] = _torch(mu, order[i].data)


_TX: dict[bool, tuple[Any, Any]] = {}


def _muon_tx(nesterov: bool) -> tuple[Any, Any]:
    """(transformation, jitted update) of ``optax.contrib.muon`` with injected hyperparameters,
    one per Nesterov flag: the hyperparameters live in the state (set before every update), so
    every optimizer instance shares the compiled update (compiled once per shape)."""
    if nesterov not in _TX:
        import jax
        import optax
        from optax.contrib import muon

        tx = optax.inject_hyperparams(muon, static_args=("nesterov",))(
            learning_rate=0.02, beta=0.95, weight_decay=0.0, nesterov=nesterov)
        _TX[nesterov] = (tx, jax.jit(tx.update))
    return _TX[nesterov]


_MSIGN: dict[str, Any] = {}


def _msign_jit() -> Any:
    """``orthogonalize_via_newton_schulz`` with KJ coefficients, 5 steps, Frobenius
    preconditioning and eps 1e-8 (the defaults of ``optax.contrib.muon``), jitted once."""
    if "f" not in _MSIGN:
        import jax
        import jax.numpy as jnp
        from optax.contrib._muon import orthogonalize_via_newton_schulz

        def f(x: Any) -> Any:
            coeffs = jnp.asarray((3.4445, -4.7750, 2.0315), dtype=x.dtype)
            return orthogonalize_via_newton_schulz(x, coeffs, 5, "frobenius", 1e-8)

        _MSIGN["f"] = jax.jit(f)
    return _MSIGN["f"]


def _find_mu(state: Any) -> Any:
    """The ``mu`` list of the MuonState inside optax's partition/chain state (None if absent)."""
    if hasattr(state, "mu") and hasattr(state, "ns_coeffs"):
        return state.mu
    if hasattr(state, "hyperparams") and hasattr(state, "inner_state"):
        return _find_mu(state.inner_state)
    if isinstance(state, dict):
        state = list(state.values())
    if isinstance(state, (list, tuple)):
        for s in state:
            found = _find_mu(s)
            if found is not None:
                return found
    inner = getattr(state, "inner_state", None)
    return _find_mu(inner) if inner is not None else None


class OptaxMuonAdapter(Adapter):
    """optax.contrib.muon through JAX arrays (profile ``optax_muon``)."""

    name = "optax.contrib.muon"
    profile = "optax_muon"
    capabilities = frozenset({"msign", "optimizer"})
    requires = ("optax", "jax")
    nesterov_toggle = True

    def msign(self, G: Any) -> Any:
        return _torch(_msign_jit()(_jnp(G)), G)

    def optimizer(self, params: list, lr: float = 0.02, momentum: float = 0.95, weight_decay: float = 0.0,
                  nesterov: bool = True) -> Any:
        return OptaxStep(params, nesterov, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
