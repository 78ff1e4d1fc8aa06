//! The syntax tree of an expression, before names and types are checked.

use std::collections::BTreeSet;
use std::fmt;

use super::bind::SERIES;

/// A parsed expression: syntax only; [`Ast::bind`](Ast::bind) checks names and types.
///
/// `Display` prints it fully parenthesised, e.g. `((close > 1) and (not x))`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    pub(crate) source: String,
    pub(crate) root: Node,
}

impl Ast {
    /// The expression text this tree was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Names that are not series (open, high, low, close, volume): the parameters it needs.
    pub fn parameters(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        self.root.visit(&mut |node| {
            if let NodeKind::Name(name) = &node.kind {
                if !SERIES.contains(&name.as_str()) {
                    names.insert(name.clone());
                }
            }
        });
        names
    }
}

impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

/// A node of the tree with the columns (1-based, in characters) an error about it points at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    /// The column of its first character (the `(` of a parenthesised expression).
    pub start: usize,
    /// The column of its main token: the operator, the function name, the literal.
    pub column: usize,
    /// Height of the tree below and including this node (a leaf is 1).
    pub depth: usize,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Number(f64),
    Bool(bool),
    Name(String),
    Neg(Box<Node>),
    Not(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
    Call {
        name: String,
        args: Vec<Node>,
        /// Column of the closing parenthesis (where a missing argument would go).
        close: usize,
    },
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }
}

impl Node {
    /// Calls `f` on this node and every node below it, parents first.
    fn visit(&self, f: &mut impl FnMut(&Node)) {
        f(self);
        match &self.kind {
            NodeKind::Number(_) | NodeKind::Bool(_) | NodeKind::Name(_) => {}
            NodeKind::Neg(x) | NodeKind::Not(x) => x.visit(f),
            NodeKind::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            NodeKind::Call { args, .. } => args.iter().for_each(|a| a.visit(f)),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            NodeKind::Number(v) => write!(f, "{v}"),
            NodeKind::Bool(b) => write!(f, "{b}"),
            NodeKind::Name(name) => f.write_str(name),
            NodeKind::Neg(x) => write!(f, "(-{x})"),
            NodeKind::Not(x) => write!(f, "(not {x})"),
            NodeKind::Binary(op, a, b) => write!(f, "({a} {} {b})", op.symbol()),
            NodeKind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
        }
    }
}
