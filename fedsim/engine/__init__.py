"""How rounds are executed: in-process (``inline``) or on Flower's Ray simulation engine."""
