//! `/v1/datasets`: upload (CSV or Parquet, raw or multipart), list, describe, delete, storage
//! usage; and how a spec's `data.dataset` resolves to a file.
//!
//! An upload is bounded at every step: its bytes as they stream in (`api.upload_limit_bytes`),
//! the uploads converted at once (`api.upload_concurrency`), what the file declares before it
//! is decoded (`api.upload_max_rows` and the engine's [`engine::data::Limits`]), the memory
//! its conversion may use (`api.upload_memory_mb`: it runs in a child process, see
//! [`crate::conversion`]), and what its owner stores (the tier's `storage_mb` and `datasets`). Its files live in `data_dir/staging` until the
//! data set is recorded, and go when the request fails or its client goes away.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use engine::data::{self, Coverage, LoadOptions};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use strata_core::config::Quota;
use strata_core::datasets::{bundled_all, bundled_named, locate, upload_path};
use strata_core::store::{
    Dataset, DatasetInserted, DatasetKind, NewDataset, StorageLimits, StorageUsage,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::ApiContext;
use crate::conversion::{remove_if_present, Conversion, Converter, Summary};
use crate::error::{ApiError, ApiResult};

/// The routes of this resource.
pub fn router() -> Router<ApiContext> {
    Router::new()
        // Uploads count their own bytes against `upload_limit_bytes` as they stream in, so the
        // JSON body limit that covers every other route does not apply here.
        .route(
            "/v1/datasets",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/datasets/usage", get(storage_usage))
        .route("/v1/datasets/{id}", get(describe).delete(remove))
}

/// A data set: an upload of the caller's, or a bundled example (id = its name).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatasetView {
    /// The id to use in `/v1/datasets/{id}`; bundled examples use their name.
    pub id: String,
    /// The name specs use as `data.dataset`.
    pub name: String,
    /// The instrument.
    pub symbol: String,
    /// `bars` (for bar and hybrid precision) or `ticks` (trades and book events, for tick
    /// precision).
    pub kind: DatasetKind,
    /// Number of bars (of events, for tick data).
    pub bars: i64,
    /// Time of the first bar.
    pub first_time: DateTime<Utc>,
    /// Time of the last bar.
    pub last_time: DateTime<Utc>,
    /// The most common gap between bars, in seconds.
    pub spacing_seconds: Option<i64>,
    /// True for the bundled examples every user can read.
    pub bundled: bool,
    /// When it was uploaded (null for bundled examples).
    pub created_at: Option<DateTime<Utc>>,
    /// Bytes of the stored file, as counted against the tier's `storage_mb` (null for bundled
    /// examples, which count against nothing).
    pub bytes: Option<i64>,
}

impl From<Dataset> for DatasetView {
    fn from(d: Dataset) -> DatasetView {
        DatasetView {
            id: d.id.to_string(),
            name: d.name,
            symbol: d.symbol,
            kind: d.kind,
            bars: d.bars,
            first_time: d.first_time,
            last_time: d.last_time,
            spacing_seconds: d.spacing_seconds,
            bundled: false,
            created_at: d.created_at,
            bytes: Some(d.bytes),
        }
    }
}

/// The bundled examples, described once per api process.
async fn bundled_views(ctx: &ApiContext) -> ApiResult<&Vec<DatasetView>> {
    let config = ctx.config.clone();
    ctx.bundled
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || {
                bundled_all(&config)
                    .into_iter()
                    .filter_map(|(name, path)| {
                        // A broken example is left out rather than breaking every listing.
                        let bars = data::load(&path, &LoadOptions::default())
                            .map_err(|e| tracing::warn!(error = %e, "bundled data set unusable"))
                            .ok()
                            .filter(|b| !b.is_empty())?;
                        let s = Summary::of_bars(&bars);
                        Some(DatasetView {
                            id: name.clone(),
                            symbol: name.clone(),
                            name,
                            kind: DatasetKind::Bars,
                            bars: s.bars,
                            first_time: s.first_time,
                            last_time: s.last_time,
                            spacing_seconds: s.spacing_seconds,
                            bundled: true,
                            created_at: None,
                            bytes: None,
                        })
                    })
                    .collect()
            })
            .await
            .map_err(|e| ApiError::Internal(format!("describing bundled data: {e}")))
        })
        .await
}

/// The data set a spec names, found.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The name (or id) the spec gave.
    pub name: String,
    /// The file, as a job's `data_path` stores it.
    pub data_path: String,
    /// Bars or ticks.
    pub kind: DatasetKind,
    /// All its bars, first and last time; `None` for a bundled file that cannot be described
    /// (the job will fail on it, and counting its bars says why).
    pub extent: Option<(i64, DateTime<Utc>, DateTime<Utc>)>,
    /// The typical time between its bars, as its description rounds it.
    pub spacing_seconds: Option<i64>,
}

impl Resolved {
    /// What the data covers, for finding the errors a job on it is sure to give before it is
    /// queued; `None` when it could not be described.
    pub fn coverage(&self) -> Option<Coverage> {
        let (_, first, last) = self.extent?;
        Some(Coverage {
            first: first.timestamp_nanos_opt()?,
            last: last.timestamp_nanos_opt()?,
            // Whole seconds: a finer spacing is unknown here, and says nothing.
            spacing: self
                .spacing_seconds
                .filter(|&s| s > 0)
                .and_then(|s| s.checked_mul(1_000_000_000)),
        })
    }
}

/// What a data set's name or id means to one user.
enum Found {
    /// A bundled example, by its own name and its file as a job's `data_path` stores it.
    Bundled { name: String, data_path: String },
    /// One of the user's uploads.
    Upload(Dataset),
}

/// The one rule every lookup follows (a spec's `data.dataset`, `GET` and `DELETE
/// /v1/datasets/{id}`, an upload's name check): an id (a UUID) is the user's upload with that
/// id; a name is a bundled example's if it is one, else the user's upload of that name. Names
/// compare ignoring ASCII case (`goog` is `GOOG`). Uploads cannot take a bundled example's name
/// (or one of their owner's names) in any case, so a name means one data set; an upload from
/// before that rule with a bundled name is reached by its id.
async fn find(ctx: &ApiContext, owner: &str, key: &str) -> ApiResult<Option<Found>> {
    if let Ok(id) = Uuid::parse_str(key) {
        return Ok(ctx.store.dataset(owner, id).await?.map(Found::Upload));
    }
    if let Some((name, data_path)) = bundled_named(&ctx.config, key) {
        return Ok(Some(Found::Bundled { name, data_path }));
    }
    Ok(ctx
        .store
        .dataset_named(owner, key)
        .await?
        .map(Found::Upload))
}

/// The data set a spec's `data.dataset` names for this user, found as [`find`] says. Unknown
/// names are a 422 on `data.dataset`.
pub async fn resolve(ctx: &ApiContext, owner: &str, name: &str) -> ApiResult<Resolved> {
    match find(ctx, owner, name).await? {
        Some(Found::Upload(dataset)) => Ok(Resolved {
            name: name.to_owned(),
            data_path: dataset.path,
            kind: dataset.kind,
            extent: Some((dataset.bars, dataset.first_time, dataset.last_time)),
            spacing_seconds: dataset.spacing_seconds,
        }),
        Some(Found::Bundled {
            name: bundled_name,
            data_path,
        }) => {
            let view = bundled_views(ctx)
                .await?
                .iter()
                .find(|d| d.name == bundled_name);
            Ok(Resolved {
                name: name.to_owned(),
                data_path,
                kind: DatasetKind::Bars,
                extent: view.map(|d| (d.bars, d.first_time, d.last_time)),
                spacing_seconds: view.and_then(|d| d.spacing_seconds),
            })
        }
        None => {
            let mut known: Vec<String> = ctx
                .store
                .datasets(owner)
                .await?
                .into_iter()
                .map(|d| d.name)
                .collect();
            known.extend(bundled_all(&ctx.config).into_iter().map(|(stem, _)| stem));
            Err(ApiError::field(
                "data.dataset",
                format!(
                    "no data set named '{name}'; available: {}",
                    known.join(", ")
                ),
            ))
        }
    }
}

/// How many bars a job on `data` runs on once `load` (its `start`, `end` and timeframe) is
/// applied, for checking against `limit`. A data set within the limit as a whole, or one the
/// job takes whole, is not read: a range and a coarser timeframe only ever take bars away.
/// Otherwise the file is read exactly as the worker will read it; a range with no bars in it
/// is then a 422 on `data` (the job could only fail).
pub async fn bars_for_job(
    ctx: &ApiContext,
    data: &Resolved,
    load: &LoadOptions,
    limit: u64,
) -> ApiResult<u64> {
    if let Some((bars, first, last)) = data.extent {
        let bars = u64::try_from(bars).unwrap_or(0);
        let nanos = |t: DateTime<Utc>| t.timestamp_nanos_opt();
        let whole = load.timeframe.is_none()
            && load
                .start
                .is_none_or(|s| nanos(first).is_some_and(|f| s <= f))
            && load.end.is_none_or(|e| nanos(last).is_some_and(|l| e >= l));
        if bars <= limit || whole {
            return Ok(bars);
        }
    }
    let path = locate(&ctx.config, &data.data_path);
    let load = load.clone();
    let name = data.name.clone();
    let kind = data.kind;
    tokio::task::spawn_blocking(move || {
        match kind {
            DatasetKind::Bars => data::load(&path, &load).map(|bars| bars.len() as u64),
            DatasetKind::Ticks => engine::tick::load(&path, &load).map(|ticks| ticks.len() as u64),
        }
        .map_err(|e| {
            // The server's paths are not the user's business: name the data set instead.
            let message = e.to_string().replace(&path.display().to_string(), &name);
            ApiError::field("data", message)
        })
    })
    .await
    .map_err(|e| ApiError::Internal(format!("counting bars: {e}")))?
}

/// Lists the caller's uploads, then the bundled examples; the caller's storage usage and
/// their tier's limits come as headers (as `GET /v1/datasets/usage` shows them).
#[utoipa::path(get, path = "/v1/datasets", tag = "datasets",
    responses((status = 200, body = Vec<DatasetView>, headers(
        ("Strata-Storage-Bytes" = i64, description = "Bytes of the caller's stored data sets"),
        ("Strata-Storage-Bytes-Limit" = i64, description = "The tier's `storage_mb` in bytes (absent: no limit)"),
        ("Strata-Storage-Datasets" = i64, description = "The caller's uploaded data sets"),
        ("Strata-Storage-Datasets-Limit" = i64, description = "The tier's `datasets` (absent: no limit)"),
    ))), security(("bearer" = [])))]
pub async fn list(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> ApiResult<(HeaderMap, Json<Vec<DatasetView>>)> {
    let uploads = ctx.store.datasets(&user.sub).await?;
    // Counted from the list itself, so headers and body agree.
    let usage = StorageUsage {
        bytes: uploads.iter().map(|d| d.bytes).sum(),
        datasets: uploads.len() as i64,
    };
    let mut views: Vec<DatasetView> = uploads.into_iter().map(DatasetView::from).collect();
    views.extend(bundled_views(&ctx).await?.iter().cloned());
    Ok((StorageView::of(&ctx, &user, usage).headers(), Json(views)))
}

/// Describes one data set: symbol, bars, first and last timestamp, spacing. `{id}` is an
/// upload's id, or a name: a bundled example's, else one of the caller's uploads. Names compare
/// ignoring ASCII case (`goog` is `GOOG`); no upload can take a bundled example's name.
#[utoipa::path(get, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path, description = "An upload's id, or a data set's name (a bundled \
        example's, else one of yours; case is ignored)")),
    responses((status = 200, body = DatasetView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn describe(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<DatasetView>> {
    match find(&ctx, &user.sub, &id).await? {
        Some(Found::Upload(d)) => Ok(Json(d.into())),
        Some(Found::Bundled { name, .. }) => bundled_views(&ctx)
            .await?
            .iter()
            .find(|d| d.name == name)
            .cloned()
            .map(Json)
            .ok_or(ApiError::NotFound("data set")),
        None => Err(ApiError::NotFound("data set")),
    }
}

/// Deletes one of the caller's uploads, by id or name (found as `GET` finds it). A bundled
/// example is a 403 `dataset_bundled`: every user reads it, and it cannot be deleted.
#[utoipa::path(delete, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path, description = "An upload's id or name (case is ignored)")),
    responses((status = 204),
              (status = 403, description = "`dataset_bundled`: a bundled example, which cannot be \
                  deleted", body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let upload = match find(&ctx, &user.sub, &id).await? {
        Some(Found::Upload(upload)) => upload,
        Some(Found::Bundled { name, .. }) => {
            return Err(ApiError::Forbidden {
                code: "dataset_bundled",
                detail: format!(
                    "'{name}' is a bundled example data set: every user reads it, and it cannot \
                     be deleted"
                ),
            })
        }
        None => return Err(ApiError::NotFound("data set")),
    };
    let dataset = ctx
        .store
        .delete_dataset(&user.sub, upload.id)
        .await?
        .ok_or(ApiError::NotFound("data set"))?;
    let path = ctx.config.data_dir.join(&dataset.path);
    if let Err(e) = tokio::fs::remove_file(&path).await {
        tracing::warn!(error = %e, path = %path.display(), "data set file already gone");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `POST /v1/datasets`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// The name specs will use as `data.dataset` (letters, digits, `_`, `-`, `.`; up to 64).
    /// Names ignore case: not a bundled example's name, nor one of yours, in any case.
    name: Option<String>,
    /// The instrument (default: the name); up to 64 characters, no control characters.
    symbol: Option<String>,
    /// `bars` (default) or `ticks`: trades and level-2 book events (README, "Tick data").
    kind: Option<DatasetKind>,
}

/// Uploads bars (or, with `kind=ticks`, trades and book events) as CSV or Parquet: the raw body
/// (`text/csv`, `application/vnd.apache.parquet`) or a multipart form with a `file` field. The
/// file is measured first (Parquet by its metadata, CSV in one bounded pass: rows, columns,
/// line length, encoding), then its rows are validated exactly as the CLI does (errors name
/// the row) and stored as Parquet, counted against the tier's `storage_mb` and `datasets`.
#[utoipa::path(post, path = "/v1/datasets", tag = "datasets", params(UploadQuery),
    request_body(content = String, description = "CSV text, Parquet bytes, or multipart with `file`",
        content_type = "text/csv"),
    responses((status = 201, body = DatasetView),
              (status = 409, description = "`dataset_exists`: you have a data set of that name; \
                  `dataset_name_bundled`: the name is a bundled example's (names ignore case); \
                  `dataset_quota_exceeded`: the tier's `datasets` are used up", body = crate::error::Problem),
              (status = 413, description = "`payload_too_large`: over `api.upload_limit_bytes`; \
                  `dataset_too_large`: more rows, columns or bytes than an upload may hold, or a \
                  line too long; `storage_quota_exceeded`: over the tier's `storage_mb`",
                  body = crate::error::Problem),
              (status = 422, description = "invalid bars (the error names the row), unreadable \
                  text (UTF-16, a quote never closed; named by line), or a bad `name` or `symbol`",
                  body = crate::error::Problem),
              (status = 503, description = "`uploads_busy`: as many uploads as `api.upload_concurrency` \
                  are being converted; retry after `Retry-After` seconds", body = crate::error::Problem,
                  headers(("Retry-After" = u64, description = "Seconds to wait")))),
    security(("bearer" = [])))]
pub async fn upload(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> ApiResult<impl IntoResponse> {
    let name = checked_name(query.name)?;
    let symbol = checked_symbol(query.symbol, &name)?;
    if let Some((bundled_name, _)) = bundled_named(&ctx.config, &name) {
        return Err(ApiError::Conflict {
            code: "dataset_name_bundled",
            detail: format!(
                "'{name}' is the name of the bundled example data set '{bundled_name}' (names \
                 ignore case), which every user reads; pick another name"
            ),
        });
    }
    if let Some(existing) = ctx.store.dataset_named(&user.sub, &name).await? {
        return Err(name_taken(&existing.name));
    }
    // Refused before a byte is received when the quota is already used up; counted again,
    // with the stored size, when the data set is recorded.
    let limits = storage_limits(&ctx, &user);
    let usage = ctx.store.storage_usage(&user.sub).await?;
    if limits.datasets.is_some_and(|limit| usage.datasets >= limit) {
        return Err(too_many_datasets(&ctx, &user, usage));
    }
    if limits.bytes.is_some_and(|limit| usage.bytes >= limit) {
        return Err(over_storage(&ctx, &user, usage, None));
    }
    let permit = ctx.uploads.permit()?;
    let kind = query.kind.unwrap_or_default();
    let mut staged = ctx.uploads.stage().await?;
    let shown_as = receive(
        &ctx,
        request,
        &mut staged,
        ctx.config.api.upload_limit_bytes,
    )
    .await?;

    let conversion = Conversion {
        kind,
        input: staged.input.clone().unwrap_or_default(),
        output: staged.output.clone(),
        shown_as,
        max_rows: ctx.config.api.upload_max_rows,
    };
    // The file is decoded by a child process (see `conversion`), watched by a task that holds
    // the staged files and the upload slot until the child has ended. When the client goes
    // away this handler is dropped, and `_cancel` with it: the task kills the child, and only
    // then are the files removed, so nothing a child writes outlives its upload.
    let (_cancel, cancelled) = oneshot::channel::<()>();
    let converter = ctx.uploads.converter.clone();
    let (staged, converted) = tokio::spawn(async move {
        let _permit = permit;
        let converted = converter.run(&conversion, cancelled).await;
        (staged, converted)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("converting an upload: {e}")))?;
    let converted = converted?;

    let id = Uuid::now_v7();
    let relative = upload_path(&user.sub, id);
    let new = NewDataset {
        id,
        owner: user.sub.clone(),
        name: name.clone(),
        symbol,
        path: relative.clone(),
        kind,
        bars: converted.summary.bars,
        first_time: converted.summary.first_time,
        last_time: converted.summary.last_time,
        spacing_seconds: converted.summary.spacing_seconds,
        bytes: i64::try_from(converted.bytes).unwrap_or(i64::MAX),
    };
    // The file's move into place and its row are one unit, run to the end even if the client
    // goes away now: a data set never has a file without a row, or a row without a file.
    let store = ctx.store.clone();
    let from = staged.output.clone();
    let to = ctx.config.data_dir.join(&relative);
    let inserted = tokio::spawn(async move { commit(&store, &new, &from, &to, limits).await })
        .await
        .map_err(|e| ApiError::Internal(format!("recording an upload: {e}")))??;
    drop(staged);
    match inserted {
        DatasetInserted::Stored(dataset) => Ok((
            StatusCode::CREATED,
            [(header::LOCATION, format!("/v1/datasets/{id}"))],
            Json(DatasetView::from(dataset)),
        )),
        DatasetInserted::NameTaken => Err(name_taken(&name)),
        DatasetInserted::TooMany(usage) => Err(too_many_datasets(&ctx, &user, usage)),
        DatasetInserted::TooLarge(usage) => Err(over_storage(
            &ctx,
            &user,
            usage,
            Some(i64::try_from(converted.bytes).unwrap_or(i64::MAX)),
        )),
    }
}

/// Moves the converted file to `to` and records the data set within `limits`; the file is
/// removed again unless the row was written.
async fn commit(
    store: &strata_core::Store,
    new: &NewDataset,
    from: &FsPath,
    to: &FsPath,
    limits: StorageLimits,
) -> ApiResult<DatasetInserted> {
    let io = |e: std::io::Error| ApiError::Internal(format!("storing a data set: {e}"));
    if let Some(dir) = to.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(io)?;
    }
    tokio::fs::rename(from, to).await.map_err(io)?;
    let inserted = store.insert_dataset_within(new, limits).await;
    if !matches!(inserted, Ok(DatasetInserted::Stored(_))) {
        if let Err(e) = tokio::fs::remove_file(to).await {
            tracing::warn!(error = %e, path = %to.display(), "cannot remove a refused upload");
        }
    }
    Ok(inserted?)
}

/// `name` as an upload may use it: 1 to 64 letters, digits, `_`, `-` or `.`, not an id.
fn checked_name(name: Option<String>) -> ApiResult<String> {
    let name = name.ok_or_else(|| ApiError::field("name", "required: ?name=NAME"))?;
    if name.chars().any(char::is_control) {
        return Err(ApiError::field(
            "name",
            "must not contain control characters (NUL, line breaks, ...)",
        ));
    }
    let valid_name = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid_name || Uuid::parse_str(&name).is_ok() {
        return Err(ApiError::field(
            "name",
            "must be 1 to 64 letters, digits, '_', '-' or '.' (and not an id)",
        ));
    }
    Ok(name)
}

/// `symbol` as stored (the name when absent): 1 to 64 characters, none of them control
/// characters, which PostgreSQL (NUL) or a reader (line breaks) would trip on.
fn checked_symbol(symbol: Option<String>, name: &str) -> ApiResult<String> {
    let Some(symbol) = symbol else {
        return Ok(name.to_owned());
    };
    if symbol.chars().any(char::is_control) {
        return Err(ApiError::field(
            "symbol",
            "must not contain control characters (NUL, line breaks, ...)",
        ));
    }
    if !(1..=64).contains(&symbol.chars().count()) || symbol.trim().is_empty() {
        return Err(ApiError::field("symbol", "must be 1 to 64 characters"));
    }
    Ok(symbol)
}

/// The refusal of an upload whose name one of the user's data sets has (ignoring case).
fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict {
        code: "dataset_exists",
        detail: format!(
            "you already have a data set named '{name}' (names ignore case); delete it first or \
             pick another name"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Storage quota

/// Bytes in a MiB, the unit of `storage_mb`.
const MIB: i64 = 1 << 20;

/// The caller's tier's `storage_mb` (in bytes) and `datasets`.
fn storage_limits(ctx: &ApiContext, user: &AuthUser) -> StorageLimits {
    let quota = ctx.config.tiers.quota(user.tier);
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    StorageLimits {
        bytes: quota.storage_mb.map(|mb| count(mb).saturating_mul(MIB)),
        datasets: quota.datasets.map(count),
    }
}

/// "; pro allows 200" or "; elite has no limit", or nothing at the top tier.
fn tier_allowing_more(
    ctx: &ApiContext,
    user: &AuthUser,
    limit: fn(&Quota) -> Option<u64>,
    unit: &str,
) -> String {
    match ctx.config.tiers.next_allowing_more(user.tier, limit) {
        Some((tier, Some(n))) => format!("; {tier} allows {n}{unit}"),
        Some((tier, None)) => format!("; {tier} has no limit"),
        None => String::new(),
    }
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// The refusal of an upload beyond the tier's `datasets` (a 409: delete one first).
fn too_many_datasets(ctx: &ApiContext, user: &AuthUser, usage: StorageUsage) -> ApiError {
    let limit = ctx
        .config
        .tiers
        .quota(user.tier)
        .datasets
        .unwrap_or_default();
    ApiError::Conflict {
        code: "dataset_quota_exceeded",
        detail: format!(
            "datasets: you have {} data sets; the {} tier allows {limit}{}; delete one first",
            usage.datasets,
            user.tier,
            tier_allowing_more(ctx, user, |q| q.datasets, "")
        ),
    }
}

/// The refusal of an upload beyond the tier's `storage_mb` (a 413), with the size of the new
/// data set when it is known.
fn over_storage(
    ctx: &ApiContext,
    user: &AuthUser,
    usage: StorageUsage,
    adding: Option<i64>,
) -> ApiError {
    let limit = ctx
        .config
        .tiers
        .quota(user.tier)
        .storage_mb
        .unwrap_or_default();
    let needs = adding
        .map(|bytes| format!("; this one needs {} more", mib(bytes)))
        .unwrap_or_default();
    ApiError::TooLarge {
        code: "storage_quota_exceeded",
        detail: format!(
            "storage_mb: your data sets take {} of the {limit} MiB the {} tier allows{needs}{}; \
             delete a data set first",
            mib(usage.bytes),
            user.tier,
            tier_allowing_more(ctx, user, |q| q.storage_mb, " MiB")
        ),
    }
}

/// What `GET /v1/datasets/usage` answers: the caller's uploads against their tier's limits.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StorageView {
    /// The caller's tier, whose limits these are.
    pub tier: strata_core::Tier,
    /// Bytes of the caller's stored data sets.
    pub bytes: i64,
    /// The tier's `storage_mb`, in bytes; null: no limit.
    pub bytes_limit: Option<i64>,
    /// The caller's uploaded data sets.
    pub datasets: i64,
    /// The tier's `datasets`; null: no limit.
    pub datasets_limit: Option<i64>,
}

impl StorageView {
    fn of(ctx: &ApiContext, user: &AuthUser, usage: StorageUsage) -> StorageView {
        let limits = storage_limits(ctx, user);
        StorageView {
            tier: user.tier,
            bytes: usage.bytes,
            bytes_limit: limits.bytes,
            datasets: usage.datasets,
            datasets_limit: limits.datasets,
        }
    }

    /// The same as response headers of `GET /v1/datasets`, whose body is a list.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (STORAGE_BYTES, Some(self.bytes)),
            (STORAGE_BYTES_LIMIT, self.bytes_limit),
            (STORAGE_DATASETS, Some(self.datasets)),
            (STORAGE_DATASETS_LIMIT, self.datasets_limit),
        ] {
            if let Some(value) = value {
                headers.insert(name, HeaderValue::from(value));
            }
        }
        headers
    }
}

/// Headers of `GET /v1/datasets` with the caller's usage (a limit's header is absent when the
/// tier has none).
const STORAGE_BYTES: &str = "strata-storage-bytes";
const STORAGE_BYTES_LIMIT: &str = "strata-storage-bytes-limit";
const STORAGE_DATASETS: &str = "strata-storage-datasets";
const STORAGE_DATASETS_LIMIT: &str = "strata-storage-datasets-limit";

/// The caller's uploads against their tier's `storage_mb` and `datasets`.
#[utoipa::path(get, path = "/v1/datasets/usage", tag = "datasets",
    responses((status = 200, body = StorageView)), security(("bearer" = [])))]
pub async fn storage_usage(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> ApiResult<Json<StorageView>> {
    let usage = ctx.store.storage_usage(&user.sub).await?;
    Ok(Json(StorageView::of(&ctx, &user, usage)))
}

// ---------------------------------------------------------------------------------------------
// Staging and conversion

/// The api's uploads in progress: at most `api.upload_concurrency` at once, each in files of
/// its own in `data_dir/staging`.
#[derive(Clone)]
pub struct Uploads {
    permits: Arc<Semaphore>,
    staging: PathBuf,
    converter: Converter,
}

/// Seconds a client is asked to wait when every upload slot is taken.
const UPLOADS_RETRY_AFTER: u64 = 5;

impl Uploads {
    /// The uploads of an api starting with `config`. Files left in the staging directory by an
    /// api that crashed are removed: those older than the request timeout (plus a minute), as
    /// no request lives longer, so uploads of other api replicas sharing the directory are left
    /// alone.
    pub fn start(config: &strata_core::Config) -> Uploads {
        let staging = config.data_dir.join("staging");
        let cutoff = Duration::from_secs(config.api.request_timeout_secs + 60);
        let removed = remove_older_than(&staging, cutoff);
        if removed > 0 {
            tracing::info!(removed, dir = %staging.display(), "removed uploads left by a crash");
        }
        Uploads {
            permits: Arc::new(Semaphore::new(config.api.upload_concurrency)),
            staging,
            converter: Converter::of(config),
        }
    }

    /// A slot for one upload, or a 503 `uploads_busy`.
    fn permit(&self) -> ApiResult<OwnedSemaphorePermit> {
        Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| ApiError::Busy {
                code: "uploads_busy",
                detail: "every upload slot of this server is in use; retry shortly".to_owned(),
                retry_after: UPLOADS_RETRY_AFTER,
            })
    }

    /// Names for a new upload's files in the staging directory (created if needed).
    async fn stage(&self) -> ApiResult<Staged> {
        tokio::fs::create_dir_all(&self.staging)
            .await
            .map_err(|e| {
                ApiError::Internal(format!("cannot create {}: {e}", self.staging.display()))
            })?;
        let id = Uuid::new_v4();
        Ok(Staged {
            dir: self.staging.clone(),
            id,
            input: None,
            output: self.staging.join(format!("{id}.converted.parquet")),
        })
    }
}

/// Removes the files in `dir` last modified longer than `age` ago; how many it removed.
fn remove_older_than(dir: &FsPath, age: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|modified| now.duration_since(modified).ok())
                .is_some_and(|elapsed| elapsed > age)
        })
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
}

/// One upload's files in the staging directory, removed when this is dropped: when the upload
/// succeeded (its file has moved into place), failed, or was abandoned by its client (axum then
/// drops the handler wherever it was).
struct Staged {
    dir: PathBuf,
    id: Uuid,
    /// The upload as received, once receiving has begun.
    input: Option<PathBuf>,
    /// The converted Parquet file.
    output: PathBuf,
}

impl Staged {
    /// The path for the upload as received, with the extension that says its format.
    fn input_path(&mut self, extension: &str) -> PathBuf {
        let path = self.dir.join(format!("{}.{extension}", self.id));
        self.input = Some(path.clone());
        path
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        for path in self.input.iter().chain([&self.output]) {
            remove_if_present(path);
        }
    }
}

/// Writes the upload (raw body or the multipart `file` field) to its staging file, at most
/// `limit` bytes; how messages should name it (the uploaded file's name, or "the upload").
async fn receive(
    ctx: &ApiContext,
    request: Request,
    staged: &mut Staged,
    limit: usize,
) -> ApiResult<String> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart =
            Multipart::from_request(request, ctx)
                .await
                .map_err(|e| ApiError::BadRequest {
                    code: "invalid_multipart",
                    detail: e.body_text(),
                })?;
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::BadRequest {
                code: "invalid_multipart",
                detail: e.body_text(),
            })?
        {
            if field.name() != Some("file") {
                continue;
            }
            let file_name = field.file_name().unwrap_or("upload").to_owned();
            let field_type = field
                .content_type()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let extension = extension_of(&field_type)
                .or_else(|| {
                    let lower = file_name.to_ascii_lowercase();
                    [".csv", ".parquet", ".pq"]
                        .iter()
                        .find(|e| lower.ends_with(*e))
                        .map(|e| if *e == ".csv" { "csv" } else { "parquet" })
                })
                .ok_or_else(|| {
                    ApiError::field(
                        "file",
                        "cannot tell CSV from Parquet: name the file .csv or .parquet, or set its Content-Type",
                    )
                })?;
            let stream = field.map_err(|e| std::io::Error::other(e.to_string()));
            write_limited(stream, &staged.input_path(extension), limit).await?;
            return Ok(file_name);
        }
        return Err(ApiError::field(
            "file",
            "the multipart form has no 'file' field",
        ));
    }
    let extension = extension_of(&content_type).ok_or_else(|| {
        let sent = if content_type.is_empty() {
            "no Content-Type".to_owned()
        } else {
            format!("'{content_type}'")
        };
        ApiError::UnsupportedMediaType(format!(
            "an upload is text/csv, application/vnd.apache.parquet (or application/x-parquet), \
             or multipart/form-data with a 'file' field; got {sent}"
        ))
    })?;
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    write_limited(stream, &staged.input_path(extension), limit).await?;
    Ok("the upload".to_owned())
}

/// The file extension a content type stands for.
fn extension_of(content_type: &str) -> Option<&'static str> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "text/csv" | "application/csv" => Some("csv"),
        "application/vnd.apache.parquet" | "application/x-parquet" | "application/parquet" => {
            Some("parquet")
        }
        _ => None,
    }
}

/// Streams `body` into the new file `path`, refusing more than `limit` bytes with a 413. The
/// file is left for its [`Staged`] guard to remove.
async fn write_limited<S, B>(mut body: S, path: &FsPath, limit: usize) -> ApiResult<()>
where
    S: Stream<Item = Result<B, std::io::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let io = |e: std::io::Error| ApiError::Internal(format!("staging an upload: {e}"));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut written = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest {
            code: "upload_interrupted",
            detail: format!("the upload could not be read: {e}"),
        })?;
        written += chunk.as_ref().len();
        if written > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        file.write_all(chunk.as_ref()).await.map_err(io)?;
    }
    file.flush().await.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_removes_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged {
            dir: dir.path().to_path_buf(),
            id: Uuid::new_v4(),
            input: None,
            output: dir.path().join("out.parquet"),
        };
        let input = staged.input_path("csv");
        std::fs::write(&input, "time,open,high,low,close\n").unwrap();
        std::fs::write(&staged.output, b"partial").unwrap();
        let output = staged.output.clone();
        drop(staged);
        assert!(!input.exists() && !output.exists());
    }
}
