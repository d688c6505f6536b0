"""Adapters that run rlsuite policies in the reference simulators (SUMO via sumo-rl, highway-env)."""
