"""Training: the loop over epochs (:mod:`.loop`), the optimizers as SymPy update equations
(:mod:`.optim`) and the data sets (:mod:`.data`)."""
