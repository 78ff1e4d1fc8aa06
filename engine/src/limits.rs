//! The engine's hard limits: sizes a request controls that are bounded for safety, whatever the
//! tier. What a plan allows (sweep sets, ranked sets kept, bars, memory per job) is a tier
//! setting in `[tiers.*]` instead; these are the ceilings above every tier, chosen so that no
//! single request can make a worker or the api allocate without bound or spin for minutes.
//!
//! Each limit is checked where the size first becomes known, before anything is allocated by
//! it, and its error names the field (and, in an expression, the column), the limit and what to
//! do instead. All of them are here so an operator reads them in one place (the README's "Hard
//! limits" lists them too).

/// Bytes of one expression (`strategy.entry`, `strategy.exit`). Written strategies are a few
/// hundred bytes; 8 KiB leaves room for long generated ones while keeping a tree of tens of
/// thousands of calls out.
pub const MAX_EXPRESSION_BYTES: usize = 8 * 1024;

/// Bytes of a sweep's `constraint`, a condition on parameters only (`fast < slow`).
pub const MAX_CONSTRAINT_BYTES: usize = 1024;

/// Deepest expression tree (nesting of parentheses, calls and unary operators included), so
/// parsing, binding and dropping a tree never exhaust the stack.
pub const MAX_EXPRESSION_DEPTH: usize = 200;

/// Distinct indicator columns one parameter set's entry and exit may use together (MACD and
/// Bollinger bands count three each). The indicator cache keeps every column for the whole job,
/// so this bounds what one strategy asks the cache to hold; a sweep's sets together are
/// bounded by [`MAX_JOB_INDICATOR_COLUMNS`] and by the tier's memory budget.
pub const MAX_INDICATOR_COLUMNS: usize = 256;

/// Distinct indicator columns all the parameter sets of one sweep or walk-forward may use
/// together. Counting stops past it, so the count itself stays small.
pub const MAX_JOB_INDICATOR_COLUMNS: usize = 65_536;

/// Values one grid parameter may take: a list's length, or a range's number of steps.
pub const MAX_GRID_VALUES: usize = 1_000_000;

/// Parameter sets a sweep enumerates (before its constraint); a larger grid needs `samples`.
/// Tiers set a lower `sweep_sets`.
pub const MAX_GRID_SETS: u64 = 10_000_000;

/// Windows of one walk-forward: each sweeps every parameter set again.
pub const MAX_WALK_FORWARD_WINDOWS: usize = 1_000;

/// Price levels on one side of a level-2 book. Real books hold tens to hundreds; a feed that
/// opens more is refused when it is loaded, naming the row.
pub const MAX_BOOK_LEVELS: usize = 5_000;

/// Largest `execution.leverage`: a position of at most this many times equity. Exchanges offer
/// up to about 100x on the most liquid futures; beyond it a 1 % move is the whole account.
pub const MAX_LEVERAGE: f64 = 100.0;
