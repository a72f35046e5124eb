"""Trainers over the store's data sets: SFT, reward models, DPO, SimPO."""
