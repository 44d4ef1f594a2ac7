"""Import every ORM model so metadata (and Alembic) sees all tables."""

from app.active.models import RewardModelFit
from app.audit.models import AuditEvent
from app.auth.models import ApiKey, Principal
from app.embeddings.models import Embedding
from app.exports.models import ExportRun
from app.jobs.models import Job, JobError
from app.outbox.models import TaskOutbox
from app.pairs.models import AnnotatorQuality, Pair, PairReview, PairSlot
from app.projects.models import Project, ProjectBudget
from app.prompts.models import Prompt, Response
from app.quality.models import QualitySnapshot
from app.queue.models import Assignment, Label
from app.schedules.models import ExportSchedule
from app.simulation.models import Simulation
from app.webhooks.models import ExportWebhook, WebhookDelivery

__all__ = [
    "AnnotatorQuality",
    "ApiKey",
    "Assignment",
    "AuditEvent",
    "Embedding",
    "ExportRun",
    "ExportSchedule",
    "ExportWebhook",
    "Job",
    "JobError",
    "Label",
    "Pair",
    "PairReview",
    "PairSlot",
    "Principal",
    "Project",
    "ProjectBudget",
    "Prompt",
    "QualitySnapshot",
    "Response",
    "RewardModelFit",
    "TaskOutbox",
    "Simulation",
    "WebhookDelivery",
]
