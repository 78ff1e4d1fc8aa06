//! The one error type of the expression language: a message and the column it points at.

use std::fmt;

/// A syntax, name or type error in a strategy expression, pointing at a column of the source.
///
/// `Display` prints the message with its column, then the expression, then a caret under the
/// column:
///
/// ```text
/// column 13: unknown function 'smaa'; expected one of: sma, ema, ...; did you mean 'sma'?
///   cross_above(smaa(close, fast), sma(close, slow))
///               ^
/// ```
///
/// The caller says which expression it was (entry or exit). `Error` is implemented by hand rather
/// than derived with `thiserror`: thiserror treats a field named `source` as the error's cause,
/// and here it is the expression text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// The whole expression, as given.
    pub source: String,
    /// 1-based column, counted in characters (not bytes); one past the end for "unexpected end".
    pub column: usize,
    /// What is wrong and what was expected, without the column.
    pub message: String,
}

impl ExprError {
    /// An error at `column` (1-based, in characters) of `source`.
    pub fn new(source: &str, column: usize, message: impl Into<String>) -> Self {
        ExprError {
            source: source.to_string(),
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "column {}: {}", self.column, self.message)?;
        // Line breaks are shown as spaces so that the caret stays under its character; tabs are
        // copied into the caret line for the same reason.
        let shown: String = self
            .source
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        writeln!(f, "  {shown}")?;
        let pad: String = self
            .source
            .chars()
            .chain(std::iter::repeat(' '))
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "  {pad}^")
    }
}

impl std::error::Error for ExprError {}
