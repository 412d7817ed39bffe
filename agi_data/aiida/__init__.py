"""AiiDA plugins of agi-data: data types, the ``wannier90.x`` CalcJob and parser, the WorkChains.

Everything here is registered through entry points (``agi.*``), so that
``verdi plugin list aiida.workflows`` shows ``agi.reference`` and ``agi.wannier``.
Importing this package does not load an AiiDA profile.
"""
