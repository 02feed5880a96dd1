"""Training: Lightning module, losses, EMA, metrics, plots and the run driver."""
