"""BAO: Background-aware Activation Map Optimization as a DVC pipeline (the library behind stages/).

A regular package, so that a stage, which puts its own checkout first on ``sys.path``, imports this
checkout's modules only, never a mix with another clone's installed copy."""
