//! The condition tree both rule languages compile to.

use crate::schema::Field;
use std::net::IpAddr;

/// A boolean condition over an event's fields.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// One must hold.
    Or(Vec<Expr>),
    /// Must not hold.
    Not(Box<Expr>),
    /// A constant.
    Const(bool),
    /// A test of one field.
    Pred(Pred),
}

/// A test of one field. A missing field fails every test but `Not`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pred {
    /// The field.
    pub field: Field,
    /// The test.
    pub test: Test,
}

/// String operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StrOp {
    /// Whole value equals.
    Eq,
    /// Value starts with.
    Prefix,
    /// Value ends with.
    Suffix,
    /// Value contains.
    Contains,
    /// Glob: `*` any run of bytes (including `/`), `?` one byte, `\` escapes.
    Glob,
    /// Regular expression (regex-automata syntax, bytes, ASCII classes),
    /// unanchored: matches anywhere unless it anchors itself.
    Regex,
}

/// Integer comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Cmp {
    /// Applies the comparison.
    pub fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

/// What is tested.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Test {
    /// The field is present.
    Exists,
    /// A string test; `ci` = ASCII case-insensitive.
    Str {
        /// Operator.
        op: StrOp,
        /// Literal bytes (Eq/Prefix/Suffix/Contains), glob or regex source.
        pat: Vec<u8>,
        /// Case-insensitive.
        ci: bool,
    },
    /// An integer comparison.
    Int(Cmp, i64),
    /// A boolean equals.
    Bool(bool),
    /// The address lies in a network (`10.0.0.0/8`); an exact address is a
    /// /32 or /128.
    Cidr(IpAddr, u8),
}

impl Expr {
    /// `a and b`, flattening nested ands.
    pub fn and(items: Vec<Expr>) -> Expr {
        let mut v = Vec::with_capacity(items.len());
        for i in items {
            match i {
                Expr::And(inner) => v.extend(inner),
                Expr::Const(true) => {}
                other => v.push(other),
            }
        }
        if v.contains(&Expr::Const(false)) {
            return Expr::Const(false);
        }
        match v.len() {
            0 => Expr::Const(true),
            1 => v.pop().unwrap_or(Expr::Const(true)),
            _ => Expr::And(v),
        }
    }

    /// `a or b`, flattening nested ors.
    pub fn or(items: Vec<Expr>) -> Expr {
        let mut v = Vec::with_capacity(items.len());
        for i in items {
            match i {
                Expr::Or(inner) => v.extend(inner),
                Expr::Const(false) => {}
                other => v.push(other),
            }
        }
        if v.contains(&Expr::Const(true)) {
            return Expr::Const(true);
        }
        match v.len() {
            0 => Expr::Const(false),
            1 => v.pop().unwrap_or(Expr::Const(false)),
            _ => Expr::Or(v),
        }
    }

    /// `not a`.
    #[allow(clippy::should_implement_trait)] // a constructor, not an operator
    pub fn not(e: Expr) -> Expr {
        match e {
            Expr::Const(b) => Expr::Const(!b),
            Expr::Not(inner) => *inner,
            other => Expr::Not(Box::new(other)),
        }
    }

    /// Every predicate in the tree.
    pub fn preds<'a>(&'a self, out: &mut Vec<&'a Pred>) {
        match self {
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| e.preds(out)),
            Expr::Not(e) => e.preds(out),
            Expr::Const(_) => {}
            Expr::Pred(p) => out.push(p),
        }
    }
}

/// Parses `10.0.0.0/8`, `::1/128` or a bare address.
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let ip: IpAddr = a.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

/// Whether `ip` lies in `net/len`.
pub fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V4(_)) => match a.to_ipv4_mapped() {
            Some(m) => in_cidr(IpAddr::V4(m), net, len),
            None => false,
        },
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let (n, l) = parse_cidr("10.0.0.0/8").unwrap();
        assert!(in_cidr("10.3.4.5".parse().unwrap(), n, l));
        assert!(!in_cidr("11.3.4.5".parse().unwrap(), n, l));
        assert!(in_cidr("::ffff:10.1.1.1".parse().unwrap(), n, l));
        let (n, l) = parse_cidr("fe80::/10").unwrap();
        assert!(in_cidr("fe80::1".parse().unwrap(), n, l));
        assert!(!in_cidr("::1".parse().unwrap(), n, l));
        assert_eq!(parse_cidr("1.2.3.4/33"), None);
        assert_eq!(parse_cidr("x/8"), None);
        let (n, l) = parse_cidr("0.0.0.0/0").unwrap();
        assert!(in_cidr("1.2.3.4".parse().unwrap(), n, l));
    }
}
