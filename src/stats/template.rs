//! SQL templates with named slots that stay runnable SQL.
//!
//! The stats queries live in `sql/queries/` as plain SQL files, so they can
//! be pasted into `clickhouse-client` and so `scripts/check_sql_modern.py`
//! runs every one of them on a modern ClickHouse. A place the engine fills
//! in is written as a comment naming the slot followed by a default:
//!
//! ```sql
//! WHERE site = /*site*/('example.com') AND ts >= /*from*/('2024-01-01 00:00:00')
//!     AND /*filters*/(1)
//! LIMIT /*limit*/10
//! ```
//!
//! The default is either parenthesized (balanced, quotes respected) or one
//! word (`10`, `pathname`). [`Template::render`] replaces slot and default
//! with what the engine supplies: a bound value (sent through the
//! `clickhouse` crate's client-side `?` binding, which escapes it — user
//! input never becomes SQL text) or a generated expression with its own
//! bound values. A comment with spaces (`/* note */`) is just a comment.
//! Values are bound positionally, so a `?` in the template text itself is
//! sent as `??` (a literal question mark).

use std::fmt::Write as _;

/// A value bound to a `?`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    U64(u64),
}

/// SQL text with `?` placeholders and their values, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Value>,
}

impl Sql {
    /// Literal SQL (a `?` in it must be meant as a placeholder).
    pub fn raw(text: &str) -> Sql {
        Sql { text: text.to_string(), binds: Vec::new() }
    }

    /// A single bound value.
    pub fn value(v: Value) -> Sql {
        Sql { text: "?".into(), binds: vec![v] }
    }

    pub fn str(s: &str) -> Sql {
        Sql::value(Value::Str(s.to_string()))
    }

    pub fn push(&mut self, other: Sql) {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
    }

    pub fn push_str(&mut self, text: &str) {
        self.text.push_str(text);
    }

    pub fn bind(&mut self, v: Value) {
        self.binds.push(v);
    }

    /// `a AND b AND …` of the parts, `1` when there are none.
    pub fn and(parts: Vec<Sql>) -> Sql {
        if parts.is_empty() {
            return Sql::raw("1");
        }
        let mut out = Sql::default();
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 {
                out.push_str(" AND ");
            }
            out.push_str("(");
            out.push(p);
            out.push_str(")");
        }
        out
    }

    /// A query for `client` with every value bound.
    pub fn query(&self, client: &clickhouse::Client) -> clickhouse::query::Query {
        let mut q = client.query(&self.text);
        for b in &self.binds {
            q = match b {
                Value::Str(s) => q.bind(s.as_str()),
                Value::U64(n) => q.bind(*n),
            };
        }
        q
    }

    /// The SQL with values inlined, for logs and the benchmark report
    /// (never sent: sending goes through [`Sql::query`]).
    pub fn display(&self) -> String {
        let mut out = String::new();
        let mut binds = self.binds.iter();
        let mut chars = self.text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '?' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'?') {
                chars.next();
                out.push('?');
                continue;
            }
            match binds.next() {
                Some(Value::Str(s)) => {
                    let _ = write!(out, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
                }
                Some(Value::U64(n)) => {
                    let _ = write!(out, "{n}");
                }
                None => out.push('?'),
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(String),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{template}: slot /*{slot}*/ has no default after it")]
    NoDefault { template: String, slot: String },
    #[error("{template}: unknown slot /*{slot}*/ (known: {known})")]
    UnknownSlot { template: String, slot: String, known: String },
    #[error("{template}: nothing fills slot /*{slot}*/")]
    Unfilled { template: String, slot: String },
    #[error("{template}: unbalanced parentheses or quotes")]
    Unbalanced { template: String },
    #[error("{template}: more than one statement")]
    Statements { template: String },
}

fn is_slot_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Length of a quoted literal starting at `s[0]` (a quote), or None.
fn quoted_len(s: &[u8]) -> Option<usize> {
    let q = s[0];
    let mut i = 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            c if c == q => {
                // '' inside '…' is an escaped quote.
                if s.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return Some(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    None
}

impl Template {
    /// Parse `text`: full-line `--` comments are dropped, a final `;` is
    /// cut, and every slot must be one of `known`.
    pub fn parse(name: &str, text: &str, known: &[&str]) -> Result<Template, TemplateError> {
        let body: String = text.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        let body = body.trim().trim_end_matches(';').trim_end();
        let err_unbalanced = || TemplateError::Unbalanced { template: name.to_string() };
        let bytes = body.as_bytes();
        let mut pieces = Vec::new();
        let mut text_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\'' | b'"' | b'`' => {
                    i += quoted_len(&bytes[i..]).ok_or_else(err_unbalanced)?;
                }
                b';' => {
                    return Err(TemplateError::Statements { template: name.to_string() });
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    let close = body[i + 2..].find("*/").ok_or_else(err_unbalanced)? + i + 2;
                    let slot = &body[i + 2..close];
                    if !is_slot_name(slot) {
                        i = close + 2;
                        continue;
                    }
                    if !known.contains(&slot) {
                        return Err(TemplateError::UnknownSlot {
                            template: name.to_string(),
                            slot: slot.to_string(),
                            known: known.join(", "),
                        });
                    }
                    let after = close + 2;
                    let end = default_end(bytes, after).ok_or_else(|| TemplateError::NoDefault {
                        template: name.to_string(),
                        slot: slot.to_string(),
                    })?;
                    if text_start < i {
                        pieces.push(Piece::Text(body[text_start..i].to_string()));
                    }
                    pieces.push(Piece::Slot(slot.to_string()));
                    i = end;
                    text_start = end;
                }
                _ => i += 1,
            }
        }
        if text_start < bytes.len() {
            pieces.push(Piece::Text(body[text_start..].to_string()));
        }
        Ok(Template { name: name.to_string(), pieces })
    }

    /// The slots used, in order of first appearance.
    pub fn slots(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.pieces {
            if let Piece::Slot(s) = p
                && !out.contains(&s.as_str())
            {
                out.push(s);
            }
        }
        out
    }

    /// Fill every slot with `fill(slot)`; `?` in the template text is
    /// escaped.
    pub fn render(&self, fill: &dyn Fn(&str) -> Option<Sql>) -> Result<Sql, TemplateError> {
        let mut out = Sql::default();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(&t.replace('?', "??")),
                Piece::Slot(s) => {
                    let sql = fill(s)
                        .ok_or_else(|| TemplateError::Unfilled { template: self.name.clone(), slot: s.clone() })?;
                    // A lone value stays bare (`LIMIT ?`); expressions are
                    // parenthesized so they cannot bind to their neighbours.
                    if sql.text == "?" {
                        out.push(sql);
                    } else {
                        out.push_str("(");
                        out.push(sql);
                        out.push_str(")");
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Where a slot's default that starts at `i` ends (skipping blanks first).
fn default_end(b: &[u8], mut i: usize) -> Option<usize> {
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    match b.get(i)? {
        b'(' => {
            let mut depth = 0usize;
            while i < b.len() {
                match b[i] {
                    b'\'' | b'"' | b'`' => {
                        i += quoted_len(&b[i..])?;
                        continue;
                    }
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        c if c.is_ascii_alphanumeric() || *c == b'_' => {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            Some(i)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(slot: &str) -> Option<Sql> {
        match slot {
            "site" => Some(Sql::str("a.com")),
            "limit" => Some(Sql::value(Value::U64(5))),
            "filters" => {
                let mut s = Sql::raw("pathname = ");
                s.push(Sql::str("/x?y"));
                Some(s)
            }
            _ => None,
        }
    }

    #[test]
    fn slots_are_replaced_and_defaults_dropped() {
        let t = Template::parse(
            "t",
            "-- a comment with /*site*/ in it\nSELECT '?', /* just a comment */ x FROM t WHERE site = /*site*/('example.com') AND /*filters*/(f(1, ')') = 2)\nLIMIT /*limit*/10;\n",
            &["site", "filters", "limit"],
        )
        .expect("parses");
        assert_eq!(t.slots(), vec!["site", "filters", "limit"]);
        let sql = t.render(&fill).expect("renders");
        assert_eq!(sql.text, "SELECT '??', /* just a comment */ x FROM t WHERE site = ? AND (pathname = ?)\nLIMIT ?");
        assert_eq!(sql.binds, vec![Value::Str("a.com".into()), Value::Str("/x?y".into()), Value::U64(5)]);
        assert_eq!(
            sql.display(),
            "SELECT '?', /* just a comment */ x FROM t WHERE site = 'a.com' AND (pathname = '/x?y')\nLIMIT 5"
        );
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(matches!(
            Template::parse("t", "SELECT /*sight*/('x')", &["site"]),
            Err(TemplateError::UnknownSlot { .. })
        ));
        assert!(matches!(Template::parse("t", "SELECT /*site*/ , 1", &["site"]), Err(TemplateError::NoDefault { .. })));
        assert!(matches!(Template::parse("t", "SELECT /*site*/('x'", &["site"]), Err(TemplateError::NoDefault { .. })));
        assert!(matches!(Template::parse("t", "SELECT 1; SELECT 2", &[]), Err(TemplateError::Statements { .. })));
        let t = Template::parse("t", "SELECT /*until*/('x')", &["until"]).expect("parses");
        assert!(matches!(t.render(&fill), Err(TemplateError::Unfilled { .. })));
    }

    #[test]
    fn sql_looking_values_stay_values() {
        let mut s = Sql::raw("x = ");
        s.push(Sql::str("'; DROP TABLE events; --"));
        assert_eq!(s.text, "x = ?");
        assert_eq!(s.display(), "x = '\\'; DROP TABLE events; --'");
    }
}
