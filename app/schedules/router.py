"""Export schedules: set, read and remove a project's schedule (the runner is exports.run_schedules)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.clock import NowDep
from app.api.deps import DataTeamDep, SessionDep
from app.api.responses import problems
from app.projects.deps import ProjectDep
from app.schedules import service
from app.schedules.schemas import ExportScheduleRead, ExportScheduleSet

router = APIRouter(prefix="/projects/{project_id}/export-schedule", tags=["exports"])


@router.put("", response_model=ExportScheduleRead, responses=problems(404))
def put_export_schedule(
    project: ProjectDep, body: ExportScheduleSet, session: SessionDep, caller: DataTeamDep, now: NowDep
) -> ExportScheduleRead:
    """Create or replace the project's export schedule: an interval or a cron (UTC) and the request."""
    return service.read(service.put(session, caller, project, body, now))


@router.get("", response_model=ExportScheduleRead, responses=problems(404))
def get_export_schedule(project: ProjectDep, session: SessionDep) -> ExportScheduleRead:
    """The project's export schedule with its next and last run; 404 if it has none."""
    return service.read(service.get(session, project))


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
def delete_export_schedule(project: ProjectDep, session: SessionDep, caller: DataTeamDep) -> Response:
    """Stop scheduled exports of the project (its exports stay); 204 also when there was none."""
    service.delete(session, caller, project)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
