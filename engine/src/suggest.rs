//! Suggestions for misspelled names: templates, fields, functions, parameters.

/// "; did you mean 'x'?" when some candidate is a small edit away from `name`, else "".
pub fn did_you_mean<'c>(name: &str, candidates: impl Iterator<Item = &'c str>) -> String {
    let lower = name.to_ascii_lowercase();
    let length = name.chars().count();
    let best = candidates
        // Lengths more than 2 apart are more than 2 edits apart: a hostile name of a megabyte
        // costs nothing.
        .filter(|c| c.chars().count().abs_diff(length) <= 2)
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= 2 && d < c.chars().count() && d < name.chars().count())
        .min_by_key(|&(d, _)| d);
    match best {
        Some((_, c)) => format!("; did you mean '{c}'?"),
        None => String::new(),
    }
}

/// Levenshtein distance, with a transposition of neighbours counted as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_name_is_suggested_and_a_far_one_is_not() {
        let names = ["sma_cross", "ema_cross", "macd_cross"];
        assert_eq!(
            did_you_mean("sma_crosss", names.iter().copied()),
            "; did you mean 'sma_cross'?"
        );
        assert_eq!(
            did_you_mean("SMA_Cros", names.iter().copied()),
            "; did you mean 'sma_cross'?"
        );
        assert_eq!(did_you_mean("momentum", names.iter().copied()), "");
        assert_eq!(
            did_you_mean(&"x".repeat(1 << 20), names.iter().copied()),
            ""
        );
    }

    #[test]
    fn edit_distance_counts_transpositions_as_one() {
        assert_eq!(edit_distance("fsat", "fast"), 1);
        assert_eq!(edit_distance("smaa", "sma"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ema", "sma"), 1);
    }
}
