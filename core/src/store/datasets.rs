//! Uploaded data sets: their description in PostgreSQL, their bars in Parquet files.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};

/// What a data set holds.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum DatasetKind {
    /// OHLCV bars, for bar and hybrid precision.
    #[default]
    Bars,
    /// Trades and level-2 book events, for tick precision.
    Ticks,
}

impl DatasetKind {
    /// `bars` or `ticks`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Bars => "bars",
            DatasetKind::Ticks => "ticks",
        }
    }
}

/// A data set as its owner sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Dataset {
    /// The data set's id.
    pub id: Uuid,
    /// The name given at upload; specs refer to it as `data.dataset`.
    pub name: String,
    /// The instrument (the name, unless the upload said otherwise).
    pub symbol: String,
    /// Bars or ticks.
    pub kind: DatasetKind,
    /// Number of bars (of events, for tick data).
    pub bars: i64,
    /// Time of the first bar.
    pub first_time: DateTime<Utc>,
    /// Time of the last bar.
    pub last_time: DateTime<Utc>,
    /// The most common gap between bars, in seconds.
    pub spacing_seconds: Option<i64>,
    /// Size of the stored Parquet file.
    pub bytes: i64,
    /// When it was uploaded (absent for bundled data sets).
    pub created_at: Option<DateTime<Utc>>,
    /// True for the examples every user can read.
    #[sqlx(default)]
    pub bundled: bool,
    /// Where the bars are, relative to the data directory.
    #[serde(skip)]
    pub path: String,
}

/// A data set to record, its file already written.
#[derive(Debug, Clone)]
pub struct NewDataset {
    /// The data set's id (also its file's name).
    pub id: Uuid,
    /// The uploader.
    pub owner: String,
    /// Its name.
    pub name: String,
    /// Its instrument.
    pub symbol: String,
    /// Where the bars are, relative to the data directory.
    pub path: String,
    /// Bars or ticks.
    pub kind: DatasetKind,
    /// Number of bars (of events, for tick data).
    pub bars: i64,
    /// Time of the first bar.
    pub first_time: DateTime<Utc>,
    /// Time of the last bar.
    pub last_time: DateTime<Utc>,
    /// Most common gap between bars, in seconds.
    pub spacing_seconds: Option<i64>,
    /// File size.
    pub bytes: i64,
}

/// What a user's uploads take: how many, and their stored bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StorageUsage {
    /// Bytes of the stored Parquet files.
    pub bytes: i64,
    /// Uploaded data sets.
    pub datasets: i64,
}

/// The most one user's uploads may take; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageLimits {
    /// Bytes of stored files.
    pub bytes: Option<i64>,
    /// Uploaded data sets.
    pub datasets: Option<i64>,
}

/// The outcome of [`Store::insert_dataset_within`].
#[derive(Debug, Clone)]
pub enum DatasetInserted {
    /// Recorded.
    Stored(Dataset),
    /// The owner already has a data set of that name (ignoring case).
    NameTaken,
    /// The owner already has `limits.datasets` data sets; their usage before this one.
    TooMany(StorageUsage),
    /// The new file would take the owner past `limits.bytes`; their usage before this one.
    TooLarge(StorageUsage),
}

/// Key of the transaction-level advisory lock under which a user's storage is counted and
/// their new data set inserted (first half of the two-int key; the second is `hashtext(owner)`).
const STORAGE_LOCK: i32 = 0x5354_4453; // "STDS"

const DATASET_COLUMNS: &str =
    "id, name, symbol, kind, bars, first_time, last_time, spacing_seconds, bytes, created_at, path";

impl Store {
    /// Records an uploaded data set unless it would take its owner past `limits`. The usage is
    /// counted and the row inserted under a per-owner lock, so two uploads of one user at the
    /// same moment cannot both take the last place (or the last bytes).
    pub async fn insert_dataset_within(
        &self,
        d: &NewDataset,
        limits: StorageLimits,
    ) -> Result<DatasetInserted, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Held until commit or rollback; other owners are not held up.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(STORAGE_LOCK)
            .bind(&d.owner)
            .execute(&mut *tx)
            .await?;
        let usage = storage_usage(&mut *tx, &d.owner).await?;
        if limits.datasets.is_some_and(|limit| usage.datasets >= limit) {
            return Ok(DatasetInserted::TooMany(usage));
        }
        if limits
            .bytes
            .is_some_and(|limit| usage.bytes.saturating_add(d.bytes) > limit)
        {
            return Ok(DatasetInserted::TooLarge(usage));
        }
        // Names are unique per owner ignoring case (`Foo` and `foo` would be one name to every
        // lookup); checked under the lock, so two uploads cannot both take one.
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM datasets WHERE owner = $1 AND lower(name) = lower($2))",
        )
        .bind(&d.owner)
        .bind(&d.name)
        .fetch_one(&mut *tx)
        .await?;
        if taken {
            return Ok(DatasetInserted::NameTaken);
        }
        let inserted: Option<Dataset> = sqlx::query_as(&format!(
            "INSERT INTO datasets (id, owner, name, symbol, path, bars, first_time, last_time,
                                   spacing_seconds, bytes, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (owner, name) DO NOTHING
             RETURNING {DATASET_COLUMNS}"
        ))
        .bind(d.id)
        .bind(&d.owner)
        .bind(&d.name)
        .bind(&d.symbol)
        .bind(&d.path)
        .bind(d.bars)
        .bind(d.first_time)
        .bind(d.last_time)
        .bind(d.spacing_seconds)
        .bind(d.bytes)
        .bind(d.kind)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.map_or(DatasetInserted::NameTaken, DatasetInserted::Stored))
    }

    /// How many data sets a user has uploaded and the bytes they take.
    pub async fn storage_usage(&self, owner: &str) -> Result<StorageUsage, StoreError> {
        storage_usage(&self.pool, owner).await
    }

    /// A user's data sets, by name.
    pub async fn datasets(&self, owner: &str) -> Result<Vec<Dataset>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE owner = $1 ORDER BY name"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await
    }

    /// A user's data set by id.
    pub async fn dataset(&self, owner: &str, id: Uuid) -> Result<Option<Dataset>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE owner = $1 AND id = $2"
        ))
        .bind(owner)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }

    /// A user's data set by name, ignoring ASCII case (names are ASCII). Two names that differ
    /// only by case can exist from before that rule: the exact spelling wins, else the oldest.
    pub async fn dataset_named(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<Option<Dataset>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE owner = $1 AND lower(name) = lower($2)
             ORDER BY name = $2 DESC, created_at, id LIMIT 1"
        ))
        .bind(owner)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
    }

    /// Forgets a user's data set, returning it so its file can be removed.
    pub async fn delete_dataset(
        &self,
        owner: &str,
        id: Uuid,
    ) -> Result<Option<Dataset>, StoreError> {
        sqlx::query_as(&format!(
            "DELETE FROM datasets WHERE owner = $1 AND id = $2 RETURNING {DATASET_COLUMNS}"
        ))
        .bind(owner)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
    }
}

async fn storage_usage<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    owner: &str,
) -> Result<StorageUsage, StoreError> {
    let (bytes, datasets): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(sum(bytes), 0)::bigint, count(*) FROM datasets WHERE owner = $1",
    )
    .bind(owner)
    .fetch_one(executor)
    .await?;
    Ok(StorageUsage { bytes, datasets })
}
