"""BAO: Background-aware Activation Map Optimization as a DVC pipeline (the library behind stages/).

Layers, one folder each: ``core`` (what every stage needs: entry, params, paths and resume keys,
atomic I/O, runtime, training loop), ``config`` (the params' typed schemas, torch-free), ``data`` and
``models``, ``method`` (TransCAM, BAO, seeds, PSA, CRF, SeCo) and ``scoring`` (metrics, label scoring,
Table 1 and figures). Package ``__init__`` files import nothing, so a stage's import closure (and its
DVC deps) is only the modules it uses.
"""
