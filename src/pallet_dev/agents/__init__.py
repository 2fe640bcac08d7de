"""Pallet agents: content-hashed images built into the local registry, deployed by digest."""
