"""WorkChains of agi-data: ``agi.reference`` and ``agi.wannier``."""
