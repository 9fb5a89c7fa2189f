//! Lookups (Devo reference tables) published by pullers: a lookup is a sequence of events on the lookup stream,
//! a control START line, data lines (additions, or deletions for incremental updates), and the same control line
//! with END. Lines are byte for byte those of Devo's own SDK (`devo.sender.lookup.Lookup`):
//!
//! - control, tag `my.lookup.control.<name>.<FULL|INC>`:
//!   `<id>_<name>|START|[{"KEY":{"type":"str","key":true}},{"COL":{"type":"int"}}]`
//! - data, tag `my.lookup.data.<name>` (`.DELETE` appended for deletions): `<id>_<name>|<key>,<field>,...` where a
//!   field is written as is when it looks like a number (`^-?\d+((\.\d+)*)$`) and `"quoted"` otherwise, after
//!   trimming spaces.
//!
//! Usage in a puller: `let events = lookup.publish(LookupAction::Full, &rows, &[], now_ms())?;` then put them on
//! the lookup sink (`ctx.open_sink(EventClass::Lookup)`), in order.

use crate::event::Event;

/// Tag prefix of control lines.
pub const CONTROL_TABLE: &str = "my.lookup.control";
/// Tag prefix of data lines.
pub const DATA_TABLE: &str = "my.lookup.data";

/// Column type declared in the START/END line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Str,
    Int,
    Int4,
    Int8,
    Float,
    Bool,
    Ip4,
}

impl ColumnType {
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::Str => "str",
            ColumnType::Int => "int",
            ColumnType::Int4 => "int4",
            ColumnType::Int8 => "int8",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Ip4 => "ip4",
        }
    }

    /// Parses `str`, `int`, `int4`, `int8`, `float`, `bool`, `ip4`.
    pub fn parse(s: &str) -> Option<ColumnType> {
        Some(match s {
            "str" => ColumnType::Str,
            "int" => ColumnType::Int,
            "int4" => ColumnType::Int4,
            "int8" => ColumnType::Int8,
            "float" => ColumnType::Float,
            "bool" => ColumnType::Bool,
            "ip4" => ColumnType::Ip4,
            _ => return None,
        })
    }
}

/// FULL replaces the whole table; INC adds, updates (and deletes) rows by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupAction {
    Full,
    Inc,
}

impl LookupAction {
    pub fn as_str(self) -> &'static str {
        match self {
            LookupAction::Full => "FULL",
            LookupAction::Inc => "INC",
        }
    }
}

/// Problems building a lookup or one of its rows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("lookup name \"{0}\" is invalid: only letters, digits and underscore are allowed")]
    BadName(String),
    #[error("lookup \"{lookup}\": key column \"{key}\" is not one of the columns")]
    UnknownKey { lookup: String, key: String },
    #[error("lookup \"{lookup}\": a row has {got} fields, the table has {expected} columns")]
    RowWidth {
        lookup: String,
        expected: usize,
        got: usize,
    },
    #[error(
        "lookup \"{lookup}\": deletions are only possible in an incremental (INC) publication"
    )]
    DeleteInFull { lookup: String },
}

/// A lookup table definition and the id of one publication.
#[derive(Debug, Clone)]
pub struct Lookup {
    name: String,
    columns: Vec<(String, ColumnType)>,
    key_index: usize,
    id: String,
    /// Double embedded quotes (`"` -> `""`) in quoted fields (devo-sdk `escape_quotes`). Default false.
    pub escape_quotes: bool,
    /// Write embedded newlines as `\n` (devo-sdk `escape_newline`). Default false.
    pub escape_newline: bool,
}

impl Lookup {
    /// `columns` in row order; `key` names the key column. The publication id is the current time as devo-sdk
    /// writes it (`str(time.time())`, e.g. `1700000000.123456`).
    pub fn new(
        name: &str,
        columns: &[(&str, ColumnType)],
        key: &str,
    ) -> Result<Lookup, LookupError> {
        Self::with_id(
            name,
            columns,
            key,
            &python_time_id(crate::time::now_ms() as f64 / 1000.0),
        )
    }

    /// Same as [`Lookup::new`] with an explicit publication id (tests, or re-sending one publication).
    pub fn with_id(
        name: &str,
        columns: &[(&str, ColumnType)],
        key: &str,
        id: &str,
    ) -> Result<Lookup, LookupError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(LookupError::BadName(name.to_owned()));
        }
        let key_index =
            columns
                .iter()
                .position(|(c, _)| *c == key)
                .ok_or_else(|| LookupError::UnknownKey {
                    lookup: name.to_owned(),
                    key: key.to_owned(),
                })?;
        Ok(Lookup {
            name: name.to_owned(),
            columns: columns.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect(),
            key_index,
            id: id.to_owned(),
            escape_quotes: false,
            escape_newline: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `[{"KEY":{"type":"str","key":true}},{"COL":{"type":"int"}},...]`: the key first, then the other columns.
    pub fn headers(&self) -> String {
        let (key, kt) = &self.columns[self.key_index];
        let mut out = format!(
            "[{{\"{key}\":{{\"type\":\"{}\",\"key\":true}}}}",
            kt.as_str()
        );
        for (i, (c, t)) in self.columns.iter().enumerate() {
            if i != self.key_index {
                out.push_str(&format!(",{{\"{c}\":{{\"type\":\"{}\"}}}}", t.as_str()));
            }
        }
        out.push(']');
        out
    }

    fn control(&self, event: &str, action: LookupAction, time_ms: i64) -> Event {
        Event::new(
            format!("{CONTROL_TABLE}.{}.{}", self.name, action.as_str()),
            time_ms,
            format!("{}_{}|{event}|{}", self.id, self.name, self.headers()),
        )
    }

    /// The START control event.
    pub fn start(&self, action: LookupAction, time_ms: i64) -> Event {
        self.control("START", action, time_ms)
    }

    /// The END control event.
    pub fn end(&self, action: LookupAction, time_ms: i64) -> Event {
        self.control("END", action, time_ms)
    }

    /// One data line: the key field first, then the others in column order.
    pub fn row<S: AsRef<str>>(
        &self,
        fields: &[S],
        delete: bool,
        time_ms: i64,
    ) -> Result<Event, LookupError> {
        if fields.len() != self.columns.len() {
            return Err(LookupError::RowWidth {
                lookup: self.name.clone(),
                expected: self.columns.len(),
                got: fields.len(),
            });
        }
        let mut line = format!("{}_{}|", self.id, self.name);
        self.clean_field(&mut line, fields[self.key_index].as_ref());
        for (i, f) in fields.iter().enumerate() {
            if i != self.key_index {
                line.push(',');
                self.clean_field(&mut line, f.as_ref());
            }
        }
        let mut tag = format!("{DATA_TABLE}.{}", self.name);
        if delete {
            tag.push_str(".DELETE");
        }
        Ok(Event::new(tag, time_ms, line))
    }

    /// A whole publication in order: START, every row, every deletion (INC only), END.
    pub fn publish<S: AsRef<str>>(
        &self,
        action: LookupAction,
        rows: &[Vec<S>],
        deletions: &[Vec<S>],
        time_ms: i64,
    ) -> Result<Vec<Event>, LookupError> {
        if action == LookupAction::Full && !deletions.is_empty() {
            return Err(LookupError::DeleteInFull {
                lookup: self.name.clone(),
            });
        }
        let mut out = Vec::with_capacity(rows.len() + deletions.len() + 2);
        out.push(self.start(action, time_ms));
        for r in rows {
            out.push(self.row(r, false, time_ms)?);
        }
        for r in deletions {
            out.push(self.row(r, true, time_ms)?);
        }
        out.push(self.end(action, time_ms));
        Ok(out)
    }

    fn clean_field(&self, out: &mut String, field: &str) {
        let f = field.trim();
        if is_number(f) {
            out.push_str(f);
            return;
        }
        out.push('"');
        for c in f.chars() {
            match c {
                '"' if self.escape_quotes => out.push_str("\"\""),
                '\n' if self.escape_newline => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// `^-?\d+((\.\d+)*)$`, devo-sdk's number test.
fn is_number(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty()
        && s.split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Python's `str(float)` for a Unix time: shortest round-trip digits, always with a decimal point.
pub fn python_time_id(seconds: f64) -> String {
    let s = format!("{seconds}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> Lookup {
        Lookup::with_id(
            "my_table",
            &[
                ("name", ColumnType::Str),
                ("id", ColumnType::Int),
                ("ip", ColumnType::Ip4),
            ],
            "id",
            "1700000000.5",
        )
        .unwrap()
    }

    #[test]
    fn control_lines_put_the_key_first() {
        let e = lookup().start(LookupAction::Full, 0);
        assert_eq!(e.tag, "my.lookup.control.my_table.FULL");
        assert_eq!(
            e.message,
            r#"1700000000.5_my_table|START|[{"id":{"type":"int","key":true}},{"name":{"type":"str"}},{"ip":{"type":"ip4"}}]"#
        );
    }

    #[test]
    fn data_lines_quote_text_and_keep_numbers() {
        let l = lookup();
        let e = l.row(&[" alice ", "42", "10.0.0.1"], false, 0).unwrap();
        assert_eq!(e.tag, "my.lookup.data.my_table");
        // "10.0.0.1" matches the number pattern of devo-sdk (dotted digits), so it is not quoted either.
        assert_eq!(e.message, "1700000000.5_my_table|42,\"alice\",10.0.0.1");
        let d = l.row(&["bob", "-7", "x"], true, 0).unwrap();
        assert_eq!(d.tag, "my.lookup.data.my_table.DELETE");
        assert_eq!(d.message, "1700000000.5_my_table|-7,\"bob\",\"x\"");
    }

    #[test]
    fn publication_order_and_errors() {
        let l = lookup();
        let ev = l
            .publish(
                LookupAction::Inc,
                &[vec!["a", "1", "x"]],
                &[vec!["b", "2", "y"]],
                5,
            )
            .unwrap();
        let tags: Vec<_> = ev.iter().map(|e| e.tag.as_str()).collect();
        assert_eq!(
            tags,
            [
                "my.lookup.control.my_table.INC",
                "my.lookup.data.my_table",
                "my.lookup.data.my_table.DELETE",
                "my.lookup.control.my_table.INC"
            ]
        );
        assert!(ev[3].message.contains("|END|"));
        assert!(matches!(
            l.publish(LookupAction::Full, &[], &[vec!["b", "2", "y"]], 5),
            Err(LookupError::DeleteInFull { .. })
        ));
        assert!(matches!(
            l.row(&["a"], false, 0),
            Err(LookupError::RowWidth {
                expected: 3,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            Lookup::with_id("bad name", &[("k", ColumnType::Str)], "k", "1"),
            Err(LookupError::BadName(_))
        ));
        assert!(matches!(
            Lookup::with_id("t", &[("k", ColumnType::Str)], "z", "1"),
            Err(LookupError::UnknownKey { .. })
        ));
    }

    #[test]
    fn escapes_are_optional_like_devo_sdk() {
        let mut l = Lookup::with_id("t", &[("k", ColumnType::Str)], "k", "1.0").unwrap();
        assert_eq!(
            l.row(&["a\"b\nc"], false, 0).unwrap().message,
            "1.0_t|\"a\"b\nc\""
        );
        l.escape_quotes = true;
        l.escape_newline = true;
        assert_eq!(
            l.row(&["a\"b\nc"], false, 0).unwrap().message,
            "1.0_t|\"a\"\"b\\nc\""
        );
    }

    #[test]
    fn ids_look_like_python_time() {
        assert_eq!(python_time_id(1700000000.0), "1700000000.0");
        assert_eq!(python_time_id(1700000000.25), "1700000000.25");
    }
}
