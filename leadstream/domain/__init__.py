"""Pure domain rules: no I/O, no clocks, no randomness. Everything here is deterministic so a
replay of the log rebuilds exactly the same state."""
