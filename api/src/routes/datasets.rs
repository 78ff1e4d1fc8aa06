//! `/v1/datasets`: upload (CSV or Parquet, raw or multipart), list, describe, delete; and how a
//! spec's `data.dataset` resolves to a file.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use engine::data::{self, Bars, LoadOptions};
use futures::{Stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use strata_core::datasets::{bundled, bundled_all, locate, upload_path};
use strata_core::store::{Dataset, DatasetKind, NewDataset};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::context::ApiContext;
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
        }
    }
}

/// What the bars (or events) say about themselves.
struct Summary {
    bars: i64,
    first_time: DateTime<Utc>,
    last_time: DateTime<Utc>,
    spacing_seconds: Option<i64>,
}

impl Summary {
    /// Count, first and last of non-empty `time`.
    fn of(time: &[i64], spacing: Option<i64>) -> Summary {
        let at = |nanos: i64| DateTime::<Utc>::from_timestamp_nanos(nanos);
        Summary {
            bars: time.len() as i64,
            first_time: at(time[0]),
            last_time: at(time[time.len() - 1]),
            spacing_seconds: spacing.map(|ns| ns / 1_000_000_000),
        }
    }
}

fn summarize(bars: &Bars) -> Summary {
    Summary::of(&bars.time, bars.spacing())
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
                        let s = summarize(&bars);
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
}

/// The data set a spec's `data.dataset` names for this user: their upload (by name or id),
/// else a bundled example. Unknown names are a 422 on `data.dataset`.
pub async fn resolve(ctx: &ApiContext, owner: &str, name: &str) -> ApiResult<Resolved> {
    let own = match Uuid::parse_str(name) {
        Ok(id) => ctx.store.dataset(owner, id).await?,
        Err(_) => ctx.store.dataset_named(owner, name).await?,
    };
    if let Some(dataset) = own {
        return Ok(Resolved {
            name: name.to_owned(),
            data_path: dataset.path,
            kind: dataset.kind,
            extent: Some((dataset.bars, dataset.first_time, dataset.last_time)),
        });
    }
    if let Some(path) = bundled(&ctx.config, name) {
        let extent = bundled_views(ctx)
            .await?
            .iter()
            .find(|d| d.name == name)
            .map(|d| (d.bars, d.first_time, d.last_time));
        return Ok(Resolved {
            name: name.to_owned(),
            data_path: path,
            kind: DatasetKind::Bars,
            extent,
        });
    }
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

/// Lists the caller's uploads, then the bundled examples.
#[utoipa::path(get, path = "/v1/datasets", tag = "datasets",
    responses((status = 200, body = Vec<DatasetView>)), security(("bearer" = [])))]
pub async fn list(
    State(ctx): State<ApiContext>,
    user: AuthUser,
) -> ApiResult<Json<Vec<DatasetView>>> {
    let mut views: Vec<DatasetView> = ctx
        .store
        .datasets(&user.sub)
        .await?
        .into_iter()
        .map(DatasetView::from)
        .collect();
    views.extend(bundled_views(&ctx).await?.iter().cloned());
    Ok(Json(views))
}

/// Describes one data set: symbol, bars, first and last timestamp, spacing.
#[utoipa::path(get, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path, description = "An upload's id, or a bundled example's name")),
    responses((status = 200, body = DatasetView), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn describe(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Json<DatasetView>> {
    if let Ok(uuid) = Uuid::parse_str(&id) {
        if let Some(d) = ctx.store.dataset(&user.sub, uuid).await? {
            return Ok(Json(d.into()));
        }
    }
    bundled_views(&ctx)
        .await?
        .iter()
        .find(|d| d.id == id)
        .cloned()
        .map(Json)
        .ok_or(ApiError::NotFound("data set"))
}

/// Deletes one of the caller's uploads (bundled examples cannot be deleted).
#[utoipa::path(delete, path = "/v1/datasets/{id}", tag = "datasets",
    params(("id" = String, Path, description = "The upload's id")),
    responses((status = 204), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("data set"))?;
    let dataset = ctx
        .store
        .delete_dataset(&user.sub, id)
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
pub struct UploadQuery {
    /// The name specs will use as `data.dataset` (letters, digits, `_`, `-`, `.`; up to 64).
    name: Option<String>,
    /// The instrument (default: the name).
    symbol: Option<String>,
    /// `bars` (default) or `ticks`: trades and level-2 book events (README, "Tick data").
    kind: Option<DatasetKind>,
}

/// Uploads bars (or, with `kind=ticks`, trades and book events) as CSV or Parquet: the raw body
/// (`text/csv`, `application/vnd.apache.parquet`) or a multipart form with a `file` field. The
/// rows are validated exactly as the CLI does (errors name the row) and stored as Parquet.
#[utoipa::path(post, path = "/v1/datasets", tag = "datasets", params(UploadQuery),
    request_body(content = String, description = "CSV text, Parquet bytes, or multipart with `file`",
        content_type = "text/csv"),
    responses((status = 201, body = DatasetView),
              (status = 409, description = "a data set of that name exists", body = crate::error::Problem),
              (status = 413, body = crate::error::Problem),
              (status = 422, description = "invalid bars; the error names the row", body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(ctx): State<ApiContext>,
    user: AuthUser,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> ApiResult<impl IntoResponse> {
    let name = query
        .name
        .ok_or_else(|| ApiError::field("name", "required: ?name=NAME"))?;
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
    if ctx.store.dataset_named(&user.sub, &name).await?.is_some() {
        return Err(ApiError::Conflict {
            code: "dataset_exists",
            detail: format!("you already have a data set named '{name}'; delete it first"),
        });
    }
    let symbol = query.symbol.unwrap_or_else(|| name.clone());
    let kind = query.kind.unwrap_or_default();
    let staging = ctx.config.data_dir.join("staging");
    tokio::fs::create_dir_all(&staging)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot create {}: {e}", staging.display())))?;

    let limit = ctx.config.api.upload_limit_bytes;
    let received = receive(&ctx, request, &staging, limit).await?;
    let id = Uuid::now_v7();
    let relative = upload_path(&user.sub, id);
    let target = ctx.config.data_dir.join(&relative);
    let staged = received.path.clone();
    let shown_as = received.shown_as.clone();
    // Parsing and writing Parquet is CPU work: keep it off the async threads.
    let converted = tokio::task::spawn_blocking(move || -> Result<(Summary, u64), String> {
        // The user's file is named as they named it, not by the server's staging path.
        let named = |e: engine::data::DataError| {
            e.to_string()
                .replace(&staged.display().to_string(), &shown_as)
        };
        let mkdir = || match target.parent() {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("storing the data set: {e}"))
            }
            None => Ok(()),
        };
        let summary = match kind {
            DatasetKind::Bars => {
                let bars = data::load(&staged, &LoadOptions::default()).map_err(named)?;
                if bars.is_empty() {
                    return Err(format!("{shown_as}: no bars"));
                }
                mkdir()?;
                bars.write_parquet(&target).map_err(|e| e.to_string())?;
                summarize(&bars)
            }
            DatasetKind::Ticks => {
                let ticks = engine::tick::load(&staged, &LoadOptions::default()).map_err(named)?;
                if ticks.is_empty() {
                    return Err(format!("{shown_as}: no events"));
                }
                mkdir()?;
                ticks.write(&target).map_err(|e| e.to_string())?;
                Summary::of(&ticks.time, None)
            }
        };
        let bytes = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
        Ok((summary, bytes))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("converting an upload: {e}")));
    let _ = tokio::fs::remove_file(&received.path).await;
    let (s, bytes) = converted?.map_err(|message| ApiError::field("file", message))?;

    let inserted = ctx
        .store
        .insert_dataset(&NewDataset {
            id,
            owner: user.sub.clone(),
            name: name.clone(),
            symbol,
            path: relative.clone(),
            kind,
            bars: s.bars,
            first_time: s.first_time,
            last_time: s.last_time,
            spacing_seconds: s.spacing_seconds,
            bytes: bytes as i64,
        })
        .await;
    match inserted {
        Ok(Some(dataset)) => Ok((
            StatusCode::CREATED,
            [(header::LOCATION, format!("/v1/datasets/{id}"))],
            Json(DatasetView::from(dataset)),
        )),
        other => {
            let _ = tokio::fs::remove_file(ctx.config.data_dir.join(&relative)).await;
            match other {
                Ok(_) => Err(ApiError::Conflict {
                    code: "dataset_exists",
                    detail: format!("you already have a data set named '{name}'; delete it first"),
                }),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// An upload written to the staging directory.
struct Received {
    path: PathBuf,
    /// How error messages name it (the uploaded file's name, or "the upload").
    shown_as: String,
}

/// Writes the upload (raw body or the multipart `file` field) to a staging file, at most
/// `limit` bytes.
async fn receive(
    ctx: &ApiContext,
    request: Request,
    staging: &FsPath,
    limit: usize,
) -> ApiResult<Received> {
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
            let path = write_limited(stream, staging, extension, limit).await?;
            return Ok(Received {
                path,
                shown_as: file_name,
            });
        }
        return Err(ApiError::field(
            "file",
            "the multipart form has no 'file' field",
        ));
    }
    let extension = extension_of(&content_type).ok_or_else(|| ApiError::BadRequest {
        code: "unsupported_media_type",
        detail: format!(
            "send text/csv, application/vnd.apache.parquet or multipart/form-data with a 'file' field, not '{content_type}'"
        ),
    })?;
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(|e| std::io::Error::other(e.to_string()));
    let path = write_limited(stream, staging, extension, limit).await?;
    Ok(Received {
        path,
        shown_as: "the upload".to_owned(),
    })
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

/// Streams `body` into a new staging file, refusing more than `limit` bytes with a 413.
async fn write_limited<S, B>(
    mut body: S,
    staging: &FsPath,
    extension: &str,
    limit: usize,
) -> ApiResult<PathBuf>
where
    S: Stream<Item = Result<B, std::io::Error>> + Unpin,
    B: AsRef<[u8]>,
{
    let path = staging.join(format!("{}.{extension}", Uuid::new_v4()));
    let io = |e: std::io::Error| ApiError::Internal(format!("staging an upload: {e}"));
    let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
    let mut written = 0usize;
    let outcome = async {
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
    .await;
    if let Err(e) = outcome {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e);
    }
    Ok(path)
}
