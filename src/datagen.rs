//! `strata datagen`: seeded synthetic trades, level-2 book events or bars, written to a file.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, ValueEnum};
use engine::data::format_time_short;
use engine::tick::datagen;

/// What `strata datagen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Trades only, with their aggressor side.
    Trades,
    /// Trades and level-2 book changes, opening with a snapshot.
    Book,
    /// One-minute OHLCV bars.
    Bars,
}

/// Options of `strata datagen`.
#[derive(Debug, Args)]
pub struct DatagenArgs {
    /// What to generate.
    #[arg(long, value_enum)]
    kind: Kind,
    /// How many events (bars for --kind bars).
    #[arg(long, value_name = "N")]
    events: usize,
    /// Seed of the generator: the same seed writes the same data.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// The file to write; its extension, .csv or .parquet/.pq, decides the format.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Book levels per side (--kind book).
    #[arg(long, value_name = "N", default_value_t = 20)]
    levels: usize,
}

/// Generates the data, writes it and prints what was written.
pub fn run(args: DatagenArgs) -> anyhow::Result<()> {
    // Checked before generating: a typo should not cost the time to make 10M events.
    check_extension(&args.out)?;
    if args.events == 0 {
        bail!("--events must be at least 1");
    }
    let (count, what, first, last) = match args.kind {
        Kind::Bars => {
            let bars = datagen::bars(args.events, args.seed);
            bars.write(&args.out)?;
            (
                bars.len(),
                "one-minute bars".to_owned(),
                bars.time[0],
                bars.time[bars.len() - 1],
            )
        }
        Kind::Trades => {
            let data = datagen::trades(args.events, args.seed);
            data.write(&args.out)?;
            (
                data.len(),
                "trades".to_owned(),
                data.time[0],
                data.time[data.len() - 1],
            )
        }
        Kind::Book => {
            if args.levels == 0 {
                bail!("--levels must be at least 1");
            }
            // The opening snapshot must be written whole: a clear with only part of the book
            // after it would read back as a smaller book.
            let opening = 1 + 2 * args.levels;
            if args.events < opening {
                bail!(
                    "--events must be at least {opening} for a book of {} levels a side (its opening \
                     snapshot)",
                    args.levels
                );
            }
            let data = datagen::book(args.events, args.levels, args.seed);
            data.write(&args.out)?;
            let what = format!(
                "book events ({} levels a side, {} trades)",
                args.levels,
                data.trades()
            );
            (data.len(), what, data.time[0], data.time[data.len() - 1])
        }
    };
    println!(
        "wrote {count} {what} to {}: {} to {} ({})",
        args.out.display(),
        format_time_short(first),
        format_time_short(last),
        span(last - first)
    );
    Ok(())
}

/// Refuses an output file that is neither CSV nor Parquet.
fn check_extension(path: &Path) -> anyhow::Result<()> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv" | "parquet" | "pq") => Ok(()),
        _ => bail!(
            "{}: unsupported file type; expected a .csv, .parquet or .pq file",
            path.display()
        ),
    }
}

/// A duration for people: `1.234s`, `16m 40s`, `2h 47m`, `3d 4h`.
fn span(nanos: i64) -> String {
    let seconds = nanos as f64 / 1e9;
    let whole = nanos / 1_000_000_000;
    match whole {
        0..60 => format!("{seconds:.3}s"),
        60..3_600 => format!("{}m {}s", whole / 60, whole % 60),
        3_600..86_400 => format!("{}h {}m", whole / 3_600, whole / 60 % 60),
        _ => format!("{}d {}h", whole / 86_400, whole / 3_600 % 24),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(1_234_000_000), "1.234s");
        assert_eq!(span(1_000 * 1_000_000_000), "16m 40s");
        assert_eq!(span(10_020 * 1_000_000_000), "2h 47m");
        assert_eq!(span(273_600 * 1_000_000_000), "3d 4h");
    }
}
