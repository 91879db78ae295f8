"""regtopo beside ``skopeo sync`` on the same content: ``python -m benchmarks.run [--quick]``.

Not part of ``make test``: timings on a shared machine are measurements, never assertions.
"""
