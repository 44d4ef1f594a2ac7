"""The interactive API docs (Swagger UI at ``/docs``), served with their assets from this package."""
