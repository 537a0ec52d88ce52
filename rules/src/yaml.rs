//! A YAML document tree that remembers the line of every node, so an error
//! can say `rules/ssh.yaml:14: rule X: field Y: ...`.
//!
//! Built from yaml-rust2's event stream. Aliases are refused (an alias bomb
//! would expand without bound, and rules have no use for them); nesting depth
//! is capped.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// A YAML node with its 1-based line.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line of the node's first character.
    pub line: usize,
    /// The node.
    pub kind: Kind,
}

/// The shape of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar and whether it was plain (unquoted: `null`, numbers, `true`).
    Scalar(String, bool),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, if a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s, _) => Some(s),
            _ => None,
        }
    }

    /// Whether this is a plain `null`/`~`/empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar(s, true) if s.is_empty() || s == "~" || s == "null" || s == "Null" || s == "NULL")
    }

    /// The mapping entries, if a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The sequence items, if a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value for `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// What this node is, for error messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(..) if self.is_null() => "null",
            Kind::Scalar(..) => "a scalar",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

enum Frame {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    error: Option<YamlError>,
}

impl Builder {
    fn push_node(&mut self, n: Node) {
        match self.stack.last_mut() {
            None => self.docs.push(n),
            Some(Frame::Seq(_, items)) => items.push(n),
            Some(Frame::Map(_, entries, key)) => match key.take() {
                None => *key = Some(n),
                Some(k) => entries.push((k, n)),
            },
        }
    }

    fn fail(&mut self, line: usize, message: &str) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line,
                message: message.to_string(),
            });
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line().max(1);
        match ev {
            Event::Alias(_) => self.fail(line, "YAML aliases are not supported in rule files"),
            Event::Scalar(s, style, _, _) => {
                let plain = matches!(style, TScalarStyle::Plain);
                self.push_node(Node {
                    line,
                    kind: Kind::Scalar(s, plain),
                })
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.stack.len() >= MAX_DEPTH => {
                self.fail(line, "nesting deeper than 64 levels")
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(line, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(line, Vec::new(), None)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(l, items)) = self.stack.pop() {
                    self.push_node(Node {
                        line: l,
                        kind: Kind::Seq(items),
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(l, entries, _)) = self.stack.pop() {
                    self.push_node(Node {
                        line: l,
                        kind: Kind::Map(entries),
                    });
                }
            }
            _ => {}
        }
    }
}

/// Parses every document of a YAML stream.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut b = Builder::default();
    let mut p = Parser::new_from_str(text);
    // Pull events one at a time: `Parser::load` recurses once per nesting
    // level before the builder can refuse the depth, so 10,000 nested
    // `- - - ...` overflowed the stack (found by the fuzzer).
    loop {
        let (ev, mark) = p.next_token().map_err(|e| YamlError {
            line: e.marker().line().max(1),
            message: e.info().to_string(),
        })?;
        let end = ev == Event::StreamEnd;
        b.on_event(ev, mark);
        if let Some(e) = b.error {
            return Err(e);
        }
        if end {
            break;
        }
    }
    Ok(b.docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_shapes() {
        let d = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap();
        assert_eq!(d.len(), 1);
        let b = d[0].get("b").unwrap();
        assert_eq!(b.line, 3);
        let s = b.as_seq().unwrap();
        assert_eq!(s[1].kind, Kind::Scalar("y".into(), false));
        assert_eq!(s[1].line, 4);
        assert_eq!(d[0].get("a").unwrap().kind, Kind::Scalar("1".into(), true));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for deep in [
            "- ".repeat(100_000),
            "[".repeat(100_000),
            "{a: ".repeat(50_000),
        ] {
            // on a 256 KiB stack: the old recursive loader needed ~200 bytes a level
            let r = std::thread::Builder::new()
                .stack_size(256 << 10)
                .spawn(move || parse(&deep))
                .unwrap()
                .join()
                .expect("no stack overflow");
            assert!(r.is_err(), "deep nesting refused");
        }
    }

    #[test]
    fn multi_document_and_errors() {
        assert_eq!(parse("a: 1\n---\nb: 2\n").unwrap().len(), 2);
        let e = parse("a: [1\nb: 2\n").unwrap_err();
        assert!(e.line >= 1, "{e:?}");
        let e = parse("a: &x 1\nb: *x\n").unwrap_err();
        assert!(e.message.contains("aliases"), "{e:?}");
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&deep).is_err());
    }
}
