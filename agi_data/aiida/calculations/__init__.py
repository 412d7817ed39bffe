"""CalcJobs of agi-data."""
