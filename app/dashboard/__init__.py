"""The project dashboard's numbers: budget burn-down, queue, leases, agreement, annotators, similarity,
exports and the reward model, read from the other domains' services (the page at /dashboard draws them)."""
