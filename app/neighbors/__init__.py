"""Cross-prompt neighbours: versioned exact/HNSW indexes per project and model."""
