//! Uploaded data sets: their description in PostgreSQL, their bars in Parquet files.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Store, StoreError};

/// A data set as its owner sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Dataset {
    /// The data set's id.
    pub id: Uuid,
    /// The name given at upload; specs refer to it as `data.dataset`.
    pub name: String,
    /// The instrument (the name, unless the upload said otherwise).
    pub symbol: String,
    /// Number of bars.
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
    /// Number of bars.
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

const DATASET_COLUMNS: &str =
    "id, name, symbol, bars, first_time, last_time, spacing_seconds, bytes, created_at, path";

impl Store {
    /// Records an uploaded data set; `None` when the owner already has one of that name.
    pub async fn insert_dataset(&self, d: &NewDataset) -> Result<Option<Dataset>, StoreError> {
        sqlx::query_as(&format!(
            "INSERT INTO datasets (id, owner, name, symbol, path, bars, first_time, last_time,
                                   spacing_seconds, bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
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
        .fetch_optional(&self.pool)
        .await
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

    /// A user's data set by name.
    pub async fn dataset_named(
        &self,
        owner: &str,
        name: &str,
    ) -> Result<Option<Dataset>, StoreError> {
        sqlx::query_as(&format!(
            "SELECT {DATASET_COLUMNS} FROM datasets WHERE owner = $1 AND name = $2"
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
