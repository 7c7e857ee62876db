//! `/v3/agents/{id}/schedules`: create, list, get, update, delete, test-fire and run history of
//! an agent's schedules (`schedule`). A schedule is a `Schedule` object named `sch-<id>`, owned
//! by its Agent; its fire state and runs are in the store. Org key only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ObjectMeta;
use sealpod_resources::ids::{Id, IdKind};
use sealpod_resources::schedule::{Overlap, ScheduleSpec};
use sealpod_resources::{Agent, Schedule, labels};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Caller;
use crate::dto::{
    CreateSchedule, PageQuery, UpdateSchedule, check_name, check_schedule_input, overlap_of,
};
use crate::error::{ApiError, ApiResult};
use crate::input::{Body, Path, Query, cursor, page_limit};
use crate::routes::agents::find_agent;
use crate::schedule::{Plan, fire_now, run_to_wire, schedule_id, schedule_to_wire};
use crate::store::{NameScope, now_rfc3339};
use crate::translate::{UPDATED_AT_ANNOTATION, name_of};
use crate::wire::{self, RunOne, RunsPage, ScheduleList, ScheduleOne};

/// The routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v3/agents/{id}/schedules", get(list).post(create))
        .route(
            "/v3/agents/{id}/schedules/{sid}",
            get(get_one).patch(update).delete(delete),
        )
        .route("/v3/agents/{id}/schedules/{sid}/fire", post(fire))
        .route("/v3/agents/{id}/schedules/{sid}/runs", get(runs))
}

/// Checks a cron expression and time zone together (`400 invalid` naming `cron` or `tz`).
fn check_plan(cron: &str, tz: Option<&str>) -> ApiResult<()> {
    Plan::parse(cron, tz)
        .map(drop)
        .map_err(|e| ApiError::invalid(e.param, e.message))
}

/// The `/v3` form of a schedule, with its fire state.
async fn to_wire(
    state: &AppState,
    agent_id: &str,
    schedule: &Schedule,
) -> ApiResult<wire::Schedule> {
    let id = schedule_id(schedule).unwrap_or_default();
    let fire = state.store().fire_state(&id).await?;
    Ok(schedule_to_wire(
        schedule,
        agent_id,
        &fire,
        chrono::Utc::now().timestamp(),
    ))
}

/// The agent (by id) and one of its schedules (by id); 404 for either.
async fn find(
    state: &AppState,
    ns: &str,
    agent_id: &str,
    schedule_id: &str,
) -> ApiResult<(Agent, Schedule)> {
    let agent = find_agent(state, ns, agent_id).await?;
    let name = name_of(schedule_id, IdKind::Schedule).ok_or(ApiError::NotFound("schedule"))?;
    let schedule = state
        .cluster()
        .get_schedule(ns, &name)
        .await?
        .filter(|s| s.spec.agent_ref == agent.name_any())
        .ok_or(ApiError::NotFound("schedule"))?;
    Ok((agent, schedule))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
    Body(req): Body<CreateSchedule>,
) -> ApiResult<(StatusCode, Json<ScheduleOne>)> {
    let ns = caller.org()?.to_owned();
    let name = req
        .name
        .ok_or_else(|| ApiError::invalid("name", "name is required"))?;
    check_name("name", &name)?;
    let cron = req
        .cron
        .ok_or_else(|| ApiError::invalid("cron", "cron is required"))?;
    let tz = req.tz.filter(|t| !t.is_empty());
    check_plan(&cron, tz.as_deref())?;
    let input = req
        .input
        .ok_or_else(|| ApiError::invalid("input", "input is required"))?;
    check_schedule_input(&input)?;
    let overlap = req
        .overlap
        .as_deref()
        .map(overlap_of)
        .transpose()?
        .unwrap_or(Overlap::Skip);
    let agent = find_agent(&state, &ns, &agent_id).await?;
    let existing = state
        .cluster()
        .list_schedules(&ns, &agent.name_any())
        .await?;
    let taken = || ApiError::conflict("conflict", format!("the agent has a schedule named {name}"));
    // Schedules applied with kubectl hold no claim: their objects are checked too.
    if existing.iter().any(|s| s.spec.name == name) {
        return Err(taken());
    }
    let id = Id::generate(IdKind::Schedule);
    let live: Vec<String> = existing.iter().filter_map(schedule_id).collect();
    let scope = NameScope {
        namespace: &ns,
        agent: &agent.name_any(),
        name: &name,
    };
    if !state
        .store()
        .claim_schedule_name(scope, &id.to_string(), &live)
        .await?
    {
        return Err(taken());
    }
    let mut schedule = Schedule::new(
        &id.object_name(),
        ScheduleSpec {
            name,
            agent_ref: agent.name_any(),
            cron,
            time_zone: tz,
            input,
            overlap,
            paused: false,
        },
    );
    schedule.metadata = ObjectMeta {
        labels: Some(
            [(labels::AGENT_LABEL.to_owned(), agent.name_any())]
                .into_iter()
                .collect(),
        ),
        annotations: Some(
            [(UPDATED_AT_ANNOTATION.to_owned(), now_rfc3339())]
                .into_iter()
                .collect(),
        ),
        // Deleting the agent deletes its schedules.
        owner_references: Some(vec![OwnerReference {
            api_version: format!("{}/{}", labels::GROUP, labels::VERSION),
            kind: "Agent".to_owned(),
            name: agent.name_any(),
            uid: agent.uid().unwrap_or_default(),
            controller: None,
            block_owner_deletion: None,
        }]),
        ..schedule.metadata
    };
    let created = match state.cluster().create_schedule(&ns, &schedule).await {
        Ok(Some(created)) => created,
        failed => {
            state.store().forget_schedule(&id.to_string()).await?;
            return Err(match failed {
                Err(e) => e.into(),
                _ => ApiError::internal("a new schedule id was taken"),
            });
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(ScheduleOne {
            schedule: to_wire(&state, &agent_id, &created).await?,
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<ScheduleList>> {
    let ns = caller.org()?;
    let agent = find_agent(&state, ns, &agent_id).await?;
    let mut schedules = Vec::new();
    for schedule in state
        .cluster()
        .list_schedules(ns, &agent.name_any())
        .await?
    {
        if schedule_id(&schedule).is_some() {
            schedules.push(to_wire(&state, &agent_id, &schedule).await?);
        }
    }
    Ok(Json(ScheduleList { schedules }))
}

async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, sid)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleOne>> {
    let ns = caller.org()?;
    let (_, schedule) = find(&state, ns, &agent_id, &sid).await?;
    Ok(Json(ScheduleOne {
        schedule: to_wire(&state, &agent_id, &schedule).await?,
    }))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, sid)): Path<(String, String)>,
    Body(req): Body<UpdateSchedule>,
) -> ApiResult<Json<ScheduleOne>> {
    let ns = caller.org()?;
    let (_, schedule) = find(&state, ns, &agent_id, &sid).await?;
    if let Some(name) = &req.name
        && *name != schedule.spec.name
    {
        return Err(ApiError::invalid("name", "a schedule cannot be renamed"));
    }
    let cron = req
        .cron
        .clone()
        .unwrap_or_else(|| schedule.spec.cron.clone());
    let tz = match &req.tz {
        Some(tz) => tz.clone().filter(|t| !t.is_empty()),
        None => schedule.spec.time_zone.clone(),
    };
    check_plan(&cron, tz.as_deref())?;
    let mut spec = json!({"cron": cron, "timeZone": tz});
    if let Some(input) = &req.input {
        check_schedule_input(input)?;
        spec["input"] = Value::from(input.as_str());
    }
    if let Some(overlap) = &req.overlap {
        spec["overlap"] = Value::from(overlap_of(overlap)?.as_str());
    }
    if let Some(paused) = req.paused {
        spec["paused"] = Value::from(paused);
    }
    let patch = json!({
        "metadata": {"annotations": {UPDATED_AT_ANNOTATION: now_rfc3339()}},
        "spec": spec,
    });
    let updated = state
        .cluster()
        .patch_schedule(ns, &schedule.name_any(), &patch)
        .await?;
    if req.paused.is_some() {
        // Pausing or resuming clears an automatic pause (once the change is stored).
        state.store().clear_auto_pause(&sid).await?;
    }
    Ok(Json(ScheduleOne {
        schedule: to_wire(&state, &agent_id, &updated).await?,
    }))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, sid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ns = caller.org()?;
    let (_, schedule) = find(&state, ns, &agent_id, &sid).await?;
    state
        .cluster()
        .delete_schedule(ns, &schedule.name_any())
        .await?;
    state.store().forget_schedule(&sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn fire(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, sid)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<RunOne>)> {
    let ns = caller.org()?;
    let (_, schedule) = find(&state, ns, &agent_id, &sid).await?;
    let run = fire_now(&state, &schedule).await?;
    Ok((
        StatusCode::CREATED,
        Json(RunOne {
            run: run_to_wire(&run),
        }),
    ))
}

async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    Path((agent_id, sid)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<RunsPage>> {
    let ns = caller.org()?;
    let _ = find(&state, ns, &agent_id, &sid).await?;
    let limit = page_limit(q.limit.as_deref(), 50, 200)?;
    let below = cursor(q.cursor.as_deref())?;
    let mut rows = state.store().list_runs(&sid, below, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more.then(|| rows.last().map(|r| r.n.to_string())).flatten();
    Ok(Json(RunsPage {
        runs: rows.iter().map(run_to_wire).collect(),
        next_cursor,
    }))
}
