"""Python client for real-align: create projects, ingest prompts, wait, and load DPO exports.

    from real_align import Client

    with Client("http://127.0.0.1:8000", api_key="real_...") as client:
        project = client.create_project("helpfulness")
        client.ingest(project.id, [{"prompt": "Hi?", "responses": ["Hello!", "Go away."]}])
        client.wait_until_ready(project.id)

Only httpx and pydantic are imported with this package; pandas and datasets only by the calls that need them.
"""

__version__ = "0.1.0"

from real_align.client import Client  # noqa: E402
from real_align.errors import (  # noqa: E402
    AuthenticationError,
    BadRequestError,
    ChecksumMismatchError,
    ConflictError,
    ExportFailedError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RealAlignError,
    ServerError,
    TransportError,
    WaitTimeoutError,
)
from real_align.models import Export, IngestConflict, IngestResult, Project, ProjectStats  # noqa: E402

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ChecksumMismatchError",
    "Client",
    "ConflictError",
    "Export",
    "ExportFailedError",
    "IngestConflict",
    "IngestResult",
    "InvalidInputError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Project",
    "ProjectStats",
    "RateLimitedError",
    "RealAlignError",
    "ServerError",
    "TransportError",
    "WaitTimeoutError",
    "__version__",
]
