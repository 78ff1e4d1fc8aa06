//! Strata's backtest engine: pure computation over in-memory columns.
//!
//! Data comes in through [`data`] (polars reads CSV and Parquet), strategies are expressions in
//! the [`expr`] language (or named [`templates`]), [`execution`] simulates orders bar by bar and
//! [`metrics`] summarises the equity curve and the trades. No tokio, no network, no database.

pub mod backtest;
pub mod budget;
pub mod data;
pub mod execution;
pub mod expr;
pub mod indicators;
pub mod limits;
pub mod metrics;
pub mod spec;
pub mod strategy;
pub mod suggest;
pub mod sweep;
pub mod templates;
pub mod tick;

pub use backtest::{run_backtest, BacktestResult, PrecisionReport};
pub use data::Bars;
