"""The OpenAPI document of the bot and operator API, generated from the same pydantic models
the handlers validate with (so it cannot drift from what the server accepts)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from leadstream.http.models import (
    Accepted,
    AssignIn,
    Digest,
    Lead,
    LeadDetail,
    LeadEditIn,
    LeadPage,
    LeadQuery,
    Me,
    MergeIn,
    NoteIn,
    SarahStateIn,
    StatusCounts,
    StatusIn,
    SyncFailure,
    SyncFailurePage,
    SyncFailureQuery,
    TagsIn,
    TaskIn,
    TaskPage,
    TaskQuery,
    TeamReport,
    TeamReportQuery,
    TimelinePage,
)

REF = "#/components/schemas/{model}"


def _schemas(*models: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in models:
        schema = m.model_json_schema(ref_template=REF)
        out.update(schema.pop("$defs", {}))
        out[m.__name__] = schema
    return out


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(model)}}}


ERRORS: dict[str, Any] = {
    "401": {"description": "missing or invalid bearer token"},
    "422": {"description": "invalid input: `fields` lists each error (loc, msg, type)"},
}


def _query_parameters(model: type[BaseModel] = LeadQuery) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    params = []
    for name, declared in schema["properties"].items():
        prop = declared
        if "anyOf" in prop:  # Optional[X]: the non-null branch
            prop = {**next(p for p in prop["anyOf"] if p.get("type") != "null"),
                    **{k: v for k, v in prop.items() if k not in ("anyOf", "default")}}
        if prop.get("type") == "array":  # sent comma-separated
            prop = {"type": "string", "description": "comma-separated: " + ", ".join(
                prop["items"].get("enum", [])) if "enum" in prop.get("items", {})
                else prop.get("description", "comma-separated")}
        params.append({"name": name, "in": "query", "required": False,
                       "schema": {k: v for k, v in prop.items() if k != "title"}})
    return params


def document() -> dict[str, Any]:
    lead_id = {"name": "lead_id", "in": "path", "required": True,
               "schema": {"type": "string", "format": "uuid"}}
    not_found = {"404": {"description": "no such lead in the token's workspace"}}
    accepted = {"202": _json(Accepted, "the command is durably on the broker"),
                "503": {"description": "broker unavailable; nothing was written"}}

    def write(model: type[BaseModel], summary: str, path_id: bool = True) -> dict[str, Any]:
        return {"summary": summary, "security": [{"bearer": []}],
                "parameters": [lead_id] if path_id else [],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(model)}}},
                "responses": {**accepted, **ERRORS, **(not_found if path_id else {})}}

    return {
        "openapi": "3.1.0",
        "info": {"title": "leadstream API", "version": "1",
                 "description": "Reads from the Postgres replica; writes are commands on "
                                "the broker (202). A token sees only its workspace."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(LeadQuery, Lead, LeadPage, LeadDetail, StatusCounts, Accepted,
                                SarahStateIn, LeadEditIn, NoteIn, StatusIn, MergeIn, AssignIn, TagsIn,
                                TaskIn, TaskPage, TeamReport, Me, SyncFailure,
                                SyncFailurePage, Digest, TimelinePage),
        },
        "paths": {
            "/api/leads": {"get": {
                "summary": "list leads: filters, sort, cursor pagination",
                "security": [{"bearer": []}], "parameters": _query_parameters(),
                "responses": {"200": _json(LeadPage, "one page"), **ERRORS}}},
            "/api/leads.csv": {"get": {
                "summary": "the filtered list as CSV (the same parameters; every page)",
                "security": [{"bearer": []}], "parameters": _query_parameters(),
                "responses": {"200": {"description": "CSV, UTF-8 with a BOM", "content": {
                    "text/csv": {"schema": {"type": "string"}}}}, **ERRORS}}},
            "/api/leads/counts": {"get": {
                "summary": "leads per status, and waiting for a reply",
                "security": [{"bearer": []}],
                "responses": {"200": _json(StatusCounts, "counts"), "401": ERRORS["401"]}}},
            "/api/me": {"get": {
                "summary": "the token's workspace, role and person",
                "security": [{"bearer": []}],
                "responses": {"200": _json(Me, "who"), "401": ERRORS["401"]}}},
            "/api/stream": {"get": {
                "summary": "Server-Sent Events: `event: lead` (data: a Lead) for every lead "
                           "change of the workspace; `event: resync` when the stream may "
                           "have a gap",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "an event stream", "content": {
                    "text/event-stream": {"schema": _ref(Lead)}}}, "401": ERRORS["401"]}}},
            "/api/digest": {"get": {
                "summary": "the manager's digest of a workspace day",
                "security": [{"bearer": []}],
                "parameters": [{"name": "day", "in": "query", "required": False,
                                "schema": {"type": "string", "format": "date"}}],
                "responses": {"200": _json(Digest, "the digest"), **ERRORS}}},
            "/api/sync-failures": {"get": {
                "summary": "the workspace's dead letters",
                "security": [{"bearer": []}],
                "parameters": _query_parameters(SyncFailureQuery),
                "responses": {"200": _json(SyncFailurePage, "dead letters"), **ERRORS}}},
            "/api/sync-failures/{failure_id}/resolve": {"post": {
                "summary": "mark a dead letter handled (who and when are recorded)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "failure_id", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {"200": _json(SyncFailure, "the resolved dead letter"),
                              "401": ERRORS["401"],
                              "403": {"description": "a sarah-bot token"},
                              "404": {"description": "no such dead letter in the workspace"}}}},
            "/api/leads/{lead_id}": {
                "get": {"summary": "one lead with notes, status history, daily summaries",
                        "security": [{"bearer": []}], "parameters": [lead_id],
                        "responses": {"200": _json(LeadDetail, "the lead"),
                                      "401": ERRORS["401"], **not_found}},
                "patch": write(LeadEditIn, "human edit of name / phone"),
            },
            "/api/leads/{lead_id}/timeline": {"get": {
                "summary": "all of a lead's messages, notes and status moves, newest first,"
                           " page by page (`next_cursor` null on the last)",
                "security": [{"bearer": []}],
                "parameters": [lead_id,
                               {"name": "limit", "in": "query", "required": False,
                                "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                               {"name": "cursor", "in": "query", "required": False,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json(TimelinePage, "one page"), **ERRORS,
                              **not_found}}},
            "/api/leads/{lead_id}/notes": {"post": write(NoteIn, "add a note")},
            "/api/leads/{lead_id}/status": {"post": write(StatusIn, "change the status")},
            "/api/leads/{lead_id}/assign": {"post": write(
                AssignIn, "assign the lead to a person of the workspace (`me`: the token's"
                " person; null: unassign); not the Sarah bot")},
            "/api/leads/{lead_id}/tags": {"post": write(
                TagsIn, "add and remove the lead's labels (the Sarah bot: at most 5 a"
                " request)")},
            "/api/leads/{lead_id}/tasks": {"post": write(
                TaskIn, "give the lead a follow-up task (`owner`: a person of the workspace,"
                " `me`, or by default the lead's owner); the answer has its `task_id`")},
            **{f"/api/tasks/{{task_id}}/{what}": {"post": {
                "summary": f"mark a task {what} (who and when are recorded)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "task_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {**accepted, **ERRORS,
                              "403": {"description": "a sarah-bot token"},
                              "404": {"description": "no such task in the workspace"}}}}
               for what in ("done", "undone")},
            "/api/tasks": {"get": {
                "summary": "tasks with their leads: overdue, due today, or all; by person",
                "security": [{"bearer": []}],
                "parameters": _query_parameters(TaskQuery),
                "responses": {"200": _json(TaskPage, "the tasks and the open counts"),
                              **ERRORS}}},
            "/api/reports/team": {"get": {
                "summary": "per day and per owner: new leads, first-response time (median, "
                           "p90), conversions; and conversion by week of first contact",
                "security": [{"bearer": []}],
                "parameters": _query_parameters(TeamReportQuery),
                "responses": {"200": _json(TeamReport, "the report"), **ERRORS}}},
            "/api/people": {"get": {
                "summary": "the workspace's people, whom a lead may be assigned to",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "`{\"people\": [names]}`"},
                              "401": ERRORS["401"]}}},
            "/api/leads/{lead_id}/merge": {"post": {
                **write(MergeIn, "merge a duplicate into this lead (irreversible)"),
                "responses": {**write(MergeIn, "")["responses"],
                              "409": {"description": "either lead is merged already"}}}},
            "/api/sarah/state": {"post": write(SarahStateIn, "Sarah's extraction",
                                               path_id=False)},
        },
    }
