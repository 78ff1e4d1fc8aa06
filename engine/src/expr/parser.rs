//! Recursive-descent parser: tokens to [`Ast`], one function per precedence level.

use super::ast::{Ast, BinOp, Node, NodeKind};
use super::error::ExprError;
use super::lexer::{tokenize, Tok, Token};
use crate::limits::MAX_EXPRESSION_BYTES;

/// Deepest tree (and deepest nesting of parentheses, calls and unary operators) accepted, so
/// that no input can exhaust the stack while parsing, binding or dropping the tree.
pub(crate) const MAX_DEPTH: usize = crate::limits::MAX_EXPRESSION_DEPTH;

/// What may start an operand, for "expected ..." messages.
const EXPECTED_OPERAND: &str =
    "expected a number, a name, a function call, 'true', 'false', 'not', '-' or '('";

/// Parses `source` into a syntax tree (syntax only: names and types are checked by `bind`).
pub(crate) fn parse(source: &str) -> Result<Ast, ExprError> {
    if source.len() > MAX_EXPRESSION_BYTES {
        // The column where the limit is passed, in characters as every column is.
        let column = source
            .char_indices()
            .take_while(|&(at, _)| at < MAX_EXPRESSION_BYTES)
            .count()
            + 1;
        return Err(ExprError::new(
            source,
            column,
            format!(
                "the expression is {} bytes long, more than the {MAX_EXPRESSION_BYTES} allowed",
                source.len()
            ),
        ));
    }
    let tokens = tokenize(source)?;
    if tokens.len() == 1 {
        return Err(ExprError::new(
            source,
            1,
            "empty expression; expected a condition such as 'close > sma(close, 20)'",
        ));
    }
    let mut parser = Parser {
        source,
        tokens,
        pos: 0,
        nesting: 0,
    };
    let root = parser.or_expr()?;
    let token = parser.peek();
    if token.tok != Tok::End {
        return Err(parser.trailing(token));
    }
    Ok(Ast {
        source: source.to_string(),
        root,
    })
}

struct Parser<'s> {
    source: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    /// Current recursion through parentheses, calls and unary operators.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        // The last token is End and is never consumed, so `pos` stays in bounds.
        self.tokens[self.pos.min(self.tokens.len() - 1)].clone()
    }

    fn peek_tok(&self) -> &Tok {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].tok
    }

    fn advance(&mut self) -> Token {
        let token = self.peek();
        if token.tok != Tok::End {
            self.pos += 1;
        }
        token
    }

    fn error(&self, column: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.source, column, message)
    }

    /// Builds a node, refusing trees deeper than [`MAX_DEPTH`].
    fn node(&self, kind: NodeKind, start: usize, column: usize) -> Result<Node, ExprError> {
        let below = match &kind {
            NodeKind::Number(_) | NodeKind::Bool(_) | NodeKind::Name(_) => 0,
            NodeKind::Neg(x) | NodeKind::Not(x) => x.depth,
            NodeKind::Binary(_, a, b) => a.depth.max(b.depth),
            NodeKind::Call { args, .. } => args.iter().map(|a| a.depth).max().unwrap_or(0),
        };
        if below >= MAX_DEPTH {
            return Err(self.too_deep(column));
        }
        Ok(Node {
            kind,
            start,
            column,
            depth: below + 1,
        })
    }

    fn too_deep(&self, column: usize) -> ExprError {
        self.error(
            column,
            format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
        )
    }

    /// Enters one level of recursion (parenthesis, call, unary operator).
    fn enter(&mut self, column: usize) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(self.too_deep(column));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn binary(&self, op: BinOp, lhs: Node, rhs: Node, column: usize) -> Result<Node, ExprError> {
        let start = lhs.start;
        self.node(
            NodeKind::Binary(op, Box::new(lhs), Box::new(rhs)),
            start,
            column,
        )
    }

    /// or_expr := and_expr ('or' and_expr)*
    fn or_expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.and_expr()?;
        while *self.peek_tok() == Tok::Or {
            let op = self.advance();
            let rhs = self.and_expr()?;
            lhs = self.binary(BinOp::Or, lhs, rhs, op.column)?;
        }
        Ok(lhs)
    }

    /// and_expr := not_expr ('and' not_expr)*
    fn and_expr(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.not_expr()?;
        while *self.peek_tok() == Tok::And {
            let op = self.advance();
            let rhs = self.not_expr()?;
            lhs = self.binary(BinOp::And, lhs, rhs, op.column)?;
        }
        Ok(lhs)
    }

    /// not_expr := 'not' not_expr | comparison
    fn not_expr(&mut self) -> Result<Node, ExprError> {
        if *self.peek_tok() != Tok::Not {
            return self.comparison();
        }
        let op = self.advance();
        self.enter(op.column)?;
        let operand = self.not_expr()?;
        self.leave();
        self.node(NodeKind::Not(Box::new(operand)), op.column, op.column)
    }

    /// comparison := sum (cmp_op sum)?   — comparisons do not chain.
    fn comparison(&mut self) -> Result<Node, ExprError> {
        let lhs = self.sum()?;
        let Some(op) = comparison_op(self.peek_tok()) else {
            return Ok(lhs);
        };
        let op_token = self.advance();
        let rhs = self.sum()?;
        if let Some(second) = comparison_op(self.peek_tok()) {
            let column = self.peek().column;
            return Err(self.error(
                column,
                format!(
                    "comparisons cannot be chained: '{}' follows '{}'; combine two comparisons \
                     with 'and', as in 'a < b and b < c'",
                    second.symbol(),
                    op.symbol()
                ),
            ));
        }
        self.binary(op, lhs, rhs, op_token.column)
    }

    /// sum := product (('+' | '-') product)*
    fn sum(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.product()?;
        loop {
            let op = match self.peek_tok() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            let op_token = self.advance();
            let rhs = self.product()?;
            lhs = self.binary(op, lhs, rhs, op_token.column)?;
        }
    }

    /// product := unary (('*' | '/') unary)*
    fn product(&mut self) -> Result<Node, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek_tok() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            let op_token = self.advance();
            let rhs = self.unary()?;
            lhs = self.binary(op, lhs, rhs, op_token.column)?;
        }
    }

    /// unary := '-' unary | primary
    fn unary(&mut self) -> Result<Node, ExprError> {
        if *self.peek_tok() != Tok::Minus {
            return self.primary();
        }
        let op = self.advance();
        self.enter(op.column)?;
        let operand = self.unary()?;
        self.leave();
        self.node(NodeKind::Neg(Box::new(operand)), op.column, op.column)
    }

    /// primary := number | 'true' | 'false' | name | name '(' args ')' | '(' or_expr ')'
    fn primary(&mut self) -> Result<Node, ExprError> {
        let token = self.advance();
        let column = token.column;
        match token.tok {
            Tok::Number(v) => self.node(NodeKind::Number(v), column, column),
            Tok::True => self.node(NodeKind::Bool(true), column, column),
            Tok::False => self.node(NodeKind::Bool(false), column, column),
            Tok::Ident(name) if *self.peek_tok() == Tok::LParen => self.call(name, column),
            Tok::Ident(name) => self.node(NodeKind::Name(name), column, column),
            Tok::LParen => {
                self.enter(column)?;
                let mut inner = self.or_expr()?;
                self.leave();
                let close = self.peek();
                match close.tok {
                    Tok::RParen => {
                        self.advance();
                        inner.start = column;
                        Ok(inner)
                    }
                    Tok::End => Err(self.error(
                        column,
                        "unclosed parenthesis: this '(' is never closed; expected ')'",
                    )),
                    _ => Err(self.error(
                        close.column,
                        format!(
                            "unexpected {}; expected ')' to close the '(' at column {column}, \
                             or an operator",
                            close.tok.describe()
                        ),
                    )),
                }
            }
            Tok::End => Err(self.error(
                column,
                format!("unexpected end of expression; {EXPECTED_OPERAND}"),
            )),
            Tok::RParen => Err(self.error(column, format!("unexpected ')'; {EXPECTED_OPERAND}"))),
            other => Err(self.error(
                column,
                format!("unexpected {}; {EXPECTED_OPERAND}", other.describe()),
            )),
        }
    }

    /// call := name '(' [or_expr (',' or_expr)*] ')'   — the name is already consumed.
    fn call(&mut self, name: String, column: usize) -> Result<Node, ExprError> {
        let open = self.advance(); // '('
        self.enter(open.column)?;
        let mut args = Vec::new();
        if *self.peek_tok() != Tok::RParen {
            loop {
                args.push(self.or_expr()?);
                let next = self.peek();
                match next.tok {
                    Tok::Comma => {
                        self.advance();
                    }
                    Tok::RParen => break,
                    Tok::End => {
                        return Err(self.error(
                            open.column,
                            format!(
                                "unclosed parenthesis: the '(' of {name}( is never closed; \
                                 expected ',' or ')'"
                            ),
                        ))
                    }
                    other => {
                        return Err(self.error(
                            next.column,
                            format!(
                                "unexpected {}; expected ',' or ')' in the arguments of {name}",
                                other.describe()
                            ),
                        ))
                    }
                }
            }
        }
        let close = self.advance(); // ')'
        self.leave();
        self.node(
            NodeKind::Call {
                name,
                args,
                close: close.column,
            },
            column,
            column,
        )
    }

    /// The error for a token left over after a complete expression.
    fn trailing(&self, token: Token) -> ExprError {
        let message = match &token.tok {
            Tok::RParen => "unexpected ')': there is no '(' to close".to_string(),
            Tok::Ident(word)
                if matches!(
                    word.to_ascii_lowercase().as_str(),
                    "and" | "or" | "not" | "true" | "false"
                ) =>
            {
                format!(
                    "unexpected name '{word}'; keywords are lowercase: '{}'",
                    word.to_ascii_lowercase()
                )
            }
            other => format!(
                "unexpected {}; expected an operator (and, or, < <= > >= == !=, + - * /) \
                 or the end of the expression",
                other.describe()
            ),
        };
        self.error(token.column, message)
    }
}

fn comparison_op(tok: &Tok) -> Option<BinOp> {
    Some(match tok {
        Tok::Lt => BinOp::Lt,
        Tok::Le => BinOp::Le,
        Tok::Gt => BinOp::Gt,
        Tok::Ge => BinOp::Ge,
        Tok::EqEq => BinOp::Eq,
        Tok::Ne => BinOp::Ne,
        _ => return None,
    })
}
