"""Client side: plain-torch local training and the Flower ClientApp that wraps it."""
