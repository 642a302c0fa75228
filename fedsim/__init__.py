"""fedsim: a federated-learning simulator for comparing client-sampling strategies.

The headline is HiCS-FL (heterogeneity-guided client sampling) and the baselines it is
compared with, all behind one sampler interface, on Flower's Message API.
"""

__version__ = "0.1.0"
