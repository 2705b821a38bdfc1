"""The versioned HTTP API (``/api/v1``): search by text, by upload or by asset id; status, health; assets with
their thumbnails and media (by id only); ingest jobs. Errors are ``{"error": ..., "exit_code": ...}``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Path, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from mmsearch.search.hits import Hits
from mmsearch.search.querylang import parse_query
from mmsearch.web.media import media_response, open_regular
from mmsearch.web.params import MAX_ID, ParameterError, SearchParams, search_params
from mmsearch.web.schemas import (
    AssetModel,
    ErrorModel,
    HealthModel,
    IngestRequest,
    JobModel,
    SearchResult,
    SigninLinkModel,
    StatusModel,
    finite,
)
from mmsearch.web.service import WebService
from mmsearch.web.uploads import UploadError, check_image, private_copy


class Answer(JSONResponse):
    """JSON as ``json.dumps`` writes it (ASCII, so a file name that is not UTF-8, held with surrogate escapes,
    goes out as ``\\udcXX`` and comes back as the same name); routes return it after shaping their data with the
    library's ``to_dict()``, and their ``response_model`` documents the shape in the OpenAPI schema."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorModel} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}
router = APIRouter(prefix="/api/v1", responses=ERRORS)
AssetId = Annotated[int, Path(ge=1, le=MAX_ID)]
TRANSCRIPT_QUERY_CHARS = 300


def web(request: Request) -> WebService:
    return request.app.state.web


Web = Annotated[WebService, Depends(web)]
Params = Annotated[SearchParams, Depends(search_params)]


@router.get("/search", response_model=SearchResult, response_model_exclude_unset=True)
def search(service: Web, params: Params) -> Answer:
    """Search by text (``q``), by an indexed asset (``like``: "more like this"), or both."""
    text, image = params.text, None
    if params.like is not None:
        text, image = _like(service, params.like, text)
    if text is None and image is None:
        raise ParameterError("give q (text), like (an asset id), or upload an image to /api/v1/search/image")
    return _search(service, params, text, image, None if params.like is None else f"asset:{params.like}")


@router.post("/search/image", response_model=SearchResult, response_model_exclude_unset=True)
def search_image(service: Web, params: Params, image: Annotated[UploadFile, File()]) -> Answer:
    """Search by an uploaded image (multipart field ``image``), mixed with ``q`` when given."""
    data = image.file.read(service.limits.max_upload + 1)
    if len(data) > service.limits.max_upload:
        raise UploadError(f"the uploaded image is over {service.limits.max_upload:,} bytes")
    check_image(data, service.engine.settings.max_image_pixels)
    with private_copy(data, service.uploads) as path:
        return _search(service, params, params.text, path, f"upload:{image.filename or 'image'}")


@router.get("/status", response_model=StatusModel)
def status(service: Web) -> Answer:
    """What is indexed, with which model, where, and how big."""
    return Answer(finite(service.run(lambda engine: engine.status().to_dict())))


@router.get("/health", response_model=HealthModel)
def health(service: Web) -> Answer:
    """The service's own facts (process, home, requests answered); does not touch the engine."""
    return Answer(service.health())


@router.get("/assets/{asset_id}", response_model=AssetModel)
def asset(service: Web, asset_id: AssetId) -> Answer:
    """An indexed asset: path, size, dates, captions and transcript segments."""
    return Answer(finite(service.asset(asset_id).to_dict()))


@router.get("/assets/{asset_id}/thumbnail", response_class=FileResponse)
def thumbnail(service: Web, asset_id: AssetId, size: Literal["grid", "preview"] = "grid") -> FileResponse:
    """A JPEG thumbnail of an image asset (``grid``: 320 px, ``preview``: 1280 px), made on first request."""
    path = service.thumbnails.get(service.asset(asset_id, "image"), size)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/assets/{asset_id}/media", response_class=FileResponse)
def media(service: Web, asset_id: AssetId) -> FileResponse:
    """The asset's original file, with HTTP Range support (audio and video seek)."""
    return media_response(service.asset(asset_id))


@router.post("/ingest", response_model=JobModel, status_code=202)
def start_ingest(service: Web, request: IngestRequest) -> Answer:
    """Start ingesting a folder (on the service's machine) in the background."""
    return Answer(finite(service.jobs.start(request.folder, request.captions, request.thumbnails).to_dict()), 202)


@router.get("/ingest", response_model=list[JobModel])
def ingest_jobs(service: Web) -> Answer:
    """Every ingest job this service remembers, oldest first."""
    return Answer([finite(job.to_dict()) for job in service.jobs.all()])


@router.get("/ingest/{job_id}", response_model=JobModel)
def ingest_job(service: Web, job_id: Annotated[str, Path(max_length=64)]) -> Answer:
    """An ingest job's progress, and its report (per-file errors included) once it ended."""
    return Answer(finite(service.jobs.get(job_id).to_dict()))


@router.delete("/ingest/{job_id}", response_model=JobModel)
def cancel_ingest(service: Web, job_id: Annotated[str, Path(max_length=64)]) -> Answer:
    """Cancel a running ingest job (what it committed stays)."""
    return Answer(finite(service.jobs.cancel(job_id).to_dict()))


@router.post("/signin-links", response_model=SigninLinkModel)
def signin_link(service: Web) -> Answer:
    """A new one-time sign-in link for a browser."""
    return Answer({"url": f"{service.url}/signin?code={service.auth.new_code()}"})


def _like(service: WebService, asset_id: int, text: str | None) -> tuple[str | None, str | None]:
    """The query of "more like this": an image asset's picture, or an audio asset's transcript as text."""
    found = service.asset(asset_id)
    if found.kind == "image":
        open_regular(found.path).close()  # a file replaced by a FIFO must not hang the engine
        return text, found.path
    spoken = " ".join(item.text for item in found.texts if item.kind == "transcript")
    spoken = "".join(char for char in spoken if char not in "\"'")[:TRANSCRIPT_QUERY_CHARS].strip()
    if not spoken:
        raise ParameterError(f"asset {asset_id} has no transcript to search with")
    return f'"{spoken}"', None


def _search(
    service: WebService, params: SearchParams, text: str | None, image: str | None, described: str | None
) -> Answer:
    if params.text is not None and any(term.image is not None for term in parse_query(params.text)):
        raise ParameterError("over HTTP an image query is an upload or an asset id (like=ID), never a path")

    def work(engine: Any) -> Hits:
        engine.check_model(params.model)
        return engine.search(text, image=image, k=params.k, kind=params.kind, **params.options)

    document = service.run(work).to_dict()  # the hits document of `mmsearch query --json` (docs/json.md)
    document["image"] = described  # what was asked by example: an upload's name or an asset, never a server path
    return Answer(finite(document))
