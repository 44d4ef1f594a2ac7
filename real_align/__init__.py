"""Python client for real-align: create projects, ingest prompts, wait, label pairs, load DPO exports.

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
    ActiveLeaseLimitError,
    AlreadyLabeledError,
    AuthenticationError,
    BadRequestError,
    ChecksumMismatchError,
    ConflictError,
    ExportFailedError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    LeaseExpiredError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    RealAlignError,
    RenewalLimitError,
    ServerError,
    TransportError,
    UndoRefusedError,
    WaitTimeoutError,
)
from real_align.models import (  # noqa: E402
    Assignment,
    Export,
    IngestConflict,
    IngestResult,
    Label,
    Lease,
    LineError,
    NothingToClaim,
    Project,
    ProjectStats,
    ShownResponse,
    UploadResult,
)

__all__ = [
    "ActiveLeaseLimitError",
    "AlreadyLabeledError",
    "Assignment",
    "AuthenticationError",
    "BadRequestError",
    "ChecksumMismatchError",
    "Client",
    "ConflictError",
    "Export",
    "ExportFailedError",
    "IdempotencyKeyReusedError",
    "IngestConflict",
    "IngestResult",
    "InvalidInputError",
    "Label",
    "Lease",
    "LineError",
    "LeaseExpiredError",
    "NotFoundError",
    "NothingToClaim",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Project",
    "ProjectStats",
    "RateLimitedError",
    "RealAlignError",
    "RenewalLimitError",
    "ServerError",
    "ShownResponse",
    "UploadResult",
    "TransportError",
    "UndoRefusedError",
    "WaitTimeoutError",
    "__version__",
]
