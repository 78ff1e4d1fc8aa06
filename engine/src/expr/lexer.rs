//! Splits an expression into tokens, each with the column (1-based, in characters) it starts at.

use super::error::ExprError;

/// One token of an expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Number(f64),
    Ident(String),
    True,
    False,
    And,
    Or,
    Not,
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    /// The end of the expression; its column is one past the last character.
    End,
}

impl Tok {
    /// How the token reads in an error message ("'and'", "number 10", "name 'fast'").
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Number(v) => format!("number {v}"),
            Tok::Ident(name) => format!("name '{name}'"),
            Tok::End => "end of expression".to_string(),
            other => format!("'{}'", other.text()),
        }
    }

    /// The source text of a fixed token.
    pub(crate) fn text(&self) -> &'static str {
        match self {
            Tok::True => "true",
            Tok::False => "false",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::Number(_) | Tok::Ident(_) | Tok::End => "",
        }
    }
}

/// A token and the column of its first character.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub column: usize,
}

/// Tokenises `source`; the last token is always [`Tok::End`].
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            '+' => (Tok::Plus, 1),
            '-' => (Tok::Minus, 1),
            '*' => (Tok::Star, 1),
            '/' => (Tok::Slash, 1),
            '<' if next == Some('=') => (Tok::Le, 2),
            '<' => (Tok::Lt, 1),
            '>' if next == Some('=') => (Tok::Ge, 2),
            '>' => (Tok::Gt, 1),
            '=' if next == Some('=') => (Tok::EqEq, 2),
            '!' if next == Some('=') => (Tok::Ne, 2),
            '0'..='9' => lex_number(source, &chars, i)?,
            '.' if next.is_some_and(|d| d.is_ascii_digit()) => lex_number(source, &chars, i)?,
            c if c.is_ascii_alphabetic() || c == '_' => {
                let len = chars[i..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .count();
                let word: String = chars[i..i + len].iter().collect();
                let tok = match word.as_str() {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    _ => Tok::Ident(word),
                };
                (tok, len)
            }
            other => return Err(ExprError::new(source, column, unexpected_char(other))),
        };
        tokens.push(Token { tok, column });
        i += len;
    }
    tokens.push(Token {
        tok: Tok::End,
        column: chars.len() + 1,
    });
    Ok(tokens)
}

/// The message for a character that starts no token, with a hint for the usual slips.
fn unexpected_char(c: char) -> String {
    let hint = match c {
        '&' => "; use 'and' to combine conditions",
        '|' => "; use 'or' to combine conditions",
        '!' => "; use 'not' to negate a condition, or '!=' to compare",
        '=' => "; use '==' to compare",
        _ => "; expected a number, a name, an operator (+ - * / < <= > >= == !=), '(', ')' or ','",
    };
    format!("unexpected character '{}'{hint}", c.escape_debug())
}

/// Lexes `digits [. digits] [e [+-] digits]` (or `. digits ...`) starting at `start`.
fn lex_number(source: &str, chars: &[char], start: usize) -> Result<(Tok, usize), ExprError> {
    let digits = |from: usize| {
        chars[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let mut end = start + digits(start);
    if chars.get(end) == Some(&'.') {
        let fraction = digits(end + 1);
        if fraction == 0 {
            return Err(ExprError::new(
                source,
                end + 2,
                "expected a digit after the decimal point",
            ));
        }
        end += 1 + fraction;
    }
    if matches!(chars.get(end), Some('e' | 'E')) {
        let mut exp = end + 1;
        if matches!(chars.get(exp), Some('+' | '-')) {
            exp += 1;
        }
        let exp_digits = digits(exp);
        if exp_digits == 0 {
            return Err(ExprError::new(
                source,
                exp + 1,
                "expected the digits of the exponent (as in 1e-3)",
            ));
        }
        end = exp + exp_digits;
    }
    let text: String = chars[start..end].iter().collect();
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok((Tok::Number(value), end - start)),
        _ => Err(ExprError::new(
            source,
            start + 1,
            format!("number '{text}' is too large"),
        )),
    }
}
