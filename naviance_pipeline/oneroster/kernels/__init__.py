"""The speed kernels of the reading, the rules and the writing: vectorised pyarrow/numpy code
that the domain modules call by name, kept apart so that those read as what is checked and why.

- ``arrays``: pyarrow string arrays as pandas Series and back, membership, choice.
- ``hashing``: a 64-bit content hash over the Arrow buffers; ``duplicated``.
- ``bytescan``: scans of the raw UTF-8 bytes (which values hold a character, line breaks,
  calendar dates read from the digits).
- ``distinct``: a predicate worked out once per distinct value.
- ``lists``: comma-separated cells split into tokens and joined back.
- ``columns``: gathering rows of a frame's columns (findings, the output frame).
- ``parallel``: the one way the core runs work on threads.

Each is tested against a plain pandas/Python reference (``naviance_pipeline_tests/oneroster/
test_kernels.py``). Nothing here knows a rule code or a file of the package.
"""
