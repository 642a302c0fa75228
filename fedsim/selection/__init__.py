"""Client samplers: who trains each round. One file per method, one shared interface."""

from fedsim.selection.base import ClientReport, ProbeReport, Sampler, SamplerNeeds

__all__ = ["ClientReport", "ProbeReport", "Sampler", "SamplerNeeds"]
