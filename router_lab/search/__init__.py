"""Policy search: Hydra's Optuna sweeper over policy parameters, an objective under constraints
decided on confidence intervals, and the best feasible configuration exported as a bundle."""
