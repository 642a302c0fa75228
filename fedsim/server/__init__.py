"""Server side: the Flower strategy that delegates client choice to a sampler, and the round loop."""
