"""The budget simulator: which pair-selection strategy saves human labels, measured offline (issue 12)."""
