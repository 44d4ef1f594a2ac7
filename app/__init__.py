"""real-align: choose the response pairs worth a human's judgment (REAL), collect labels, ship DPO data."""

__version__ = "0.1.0"
