"""Import stub: server/server_fedcor.py (imported by trainer.py) does `import GPR`; GPR.py is
not part of the stored repository. FedCor is not run here."""


class Kernel_GPR:
    def __init__(self, *a, **k):
        raise RuntimeError("GPR (FedCor) is not available in this copy")


class Poly_Kernel:
    def __init__(self, *a, **k):
        raise RuntimeError("GPR (FedCor) is not available in this copy")
