//! Declarations of configuration keys: each key is declared once, as a [`Key`] (name, type, default,
//! range or allowed values, meaning, secret or not, rejected or not) in a [`KeySet`] next to the config struct that
//! reads it. The same declaration drives the reader ([`Section`](super::Section)'s `get_*` methods: defaults, range
//! checks, error messages), `logferry validate`, `logferry config-reference` and the parameter tables of docs/*.md
//! ([`KeySet::render_markdown`], regions marked `<!-- generated: <set id> -->`).

use serde_json::{json, Value};
use std::fmt::Write as _;

/// The type of a key's value and its range or allowed values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Bool,
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A number in `min..=max` (infinite bounds: unbounded).
    Float {
        min: f64,
        max: f64,
    },
    /// Free text.
    Text,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A readable file (relative to the config file's directory).
    File,
    /// A directory or path, not checked when read.
    Path,
    /// A list of strings.
    List,
    /// A nested dictionary; its keys are declared by the set when there is one (shown inline as `key.sub`).
    Dict(Option<&'static KeySet>),
    /// Text of a format the component checks itself, described here (e.g. `ip:port`).
    Format(&'static str),
}

/// The format of a key naming a JSON member the collector writes or looks up as text (checked by
/// [`Section::json_member_name`](super::Section::json_member_name)).
pub const JSON_MEMBER_NAME: &str = "printable ASCII without `\"` and `\\`";

/// A key's default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Default {
    /// None: the key is mandatory, or its absence means "not set".
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'static str),
    /// A default the component computes, in words (e.g. "the machine's host name").
    Computed(&'static str),
}

/// One configuration key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    pub name: &'static str,
    /// Other names read for the same setting (e.g. `debug_status` for `debug`).
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    pub default: Default,
    pub required: bool,
    /// A credential: never logged, masked in every line.
    pub secret: bool,
    /// Documented by the vendor seeds but refused here: why (the error message).
    pub rejected: Option<&'static str>,
    /// For tests and benchmarks only.
    pub testing_only: bool,
    /// What it does (markdown, one paragraph).
    pub meaning: &'static str,
}

impl Key {
    const fn new(name: &'static str, kind: Kind, default: Default, meaning: &'static str) -> Key {
        Key {
            name,
            aliases: &[],
            kind,
            default,
            required: false,
            secret: false,
            rejected: None,
            testing_only: false,
            meaning,
        }
    }
    pub const fn bool(name: &'static str, default: bool, meaning: &'static str) -> Key {
        Key::new(name, Kind::Bool, Default::Bool(default), meaning)
    }
    pub const fn int(
        name: &'static str,
        default: i64,
        min: i64,
        max: i64,
        meaning: &'static str,
    ) -> Key {
        Key::new(name, Kind::Int { min, max }, Default::Int(default), meaning)
    }
    /// An integer without a default (mandatory with [`Key::required`], or "not set" when absent).
    pub const fn int_unset(name: &'static str, min: i64, max: i64, meaning: &'static str) -> Key {
        Key::new(name, Kind::Int { min, max }, Default::None, meaning)
    }
    pub const fn float(name: &'static str, default: f64, meaning: &'static str) -> Key {
        let any = Kind::Float {
            min: f64::NEG_INFINITY,
            max: f64::INFINITY,
        };
        Key::new(name, any, Default::Float(default), meaning)
    }
    pub const fn float_in(
        name: &'static str,
        default: f64,
        min: f64,
        max: f64,
        meaning: &'static str,
    ) -> Key {
        Key::new(
            name,
            Kind::Float { min, max },
            Default::Float(default),
            meaning,
        )
    }
    /// Free text without a default.
    pub const fn text(name: &'static str, meaning: &'static str) -> Key {
        Key::new(name, Kind::Text, Default::None, meaning)
    }
    pub const fn text_or(name: &'static str, default: &'static str, meaning: &'static str) -> Key {
        Key::new(name, Kind::Text, Default::Text(default), meaning)
    }
    pub const fn one_of(
        name: &'static str,
        default: &'static str,
        allowed: &'static [&'static str],
        meaning: &'static str,
    ) -> Key {
        Key::new(name, Kind::OneOf(allowed), Default::Text(default), meaning)
    }
    pub const fn file(name: &'static str, meaning: &'static str) -> Key {
        Key::new(name, Kind::File, Default::None, meaning)
    }
    pub const fn path(name: &'static str, default: &'static str, meaning: &'static str) -> Key {
        Key::new(name, Kind::Path, Default::Text(default), meaning)
    }
    pub const fn list(name: &'static str, meaning: &'static str) -> Key {
        Key::new(name, Kind::List, Default::None, meaning)
    }
    pub const fn dict(
        name: &'static str,
        keys: Option<&'static KeySet>,
        meaning: &'static str,
    ) -> Key {
        Key::new(name, Kind::Dict(keys), Default::None, meaning)
    }
    pub const fn format(name: &'static str, format: &'static str, meaning: &'static str) -> Key {
        Key::new(name, Kind::Format(format), Default::None, meaning)
    }
    /// A key the seeds document and this collector refuses; `why` is the error message.
    pub const fn rejected(name: &'static str, why: &'static str) -> Key {
        let mut k = Key::new(name, Kind::Format("any"), Default::None, why);
        k.rejected = Some(why);
        k
    }

    pub const fn required(mut self) -> Key {
        self.required = true;
        self
    }
    pub const fn secret(mut self) -> Key {
        self.secret = true;
        self
    }
    pub const fn testing_only(mut self) -> Key {
        self.testing_only = true;
        self
    }
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> Key {
        self.aliases = aliases;
        self
    }
    /// Replaces the default (e.g. the `Text` default of a [`Kind::Format`] key).
    pub const fn with_default(mut self, default: Default) -> Key {
        self.default = default;
        self
    }
    /// A default described in words (computed by the component).
    pub const fn computed_default(mut self, words: &'static str) -> Key {
        self.default = Default::Computed(words);
        self
    }

    /// The key's type in words, as the tables and the JSON reference show it.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Bool => "boolean",
            Kind::Int { .. } => "integer",
            Kind::Float { .. } => "number",
            Kind::Text | Kind::OneOf(_) | Kind::Format(_) => "string",
            Kind::File => "file",
            Kind::Path => "path",
            Kind::List => "list of strings",
            Kind::Dict(_) => "dictionary",
        }
    }

    /// The range or allowed values in words (`1..=65535`, `none, lz4`), empty when any value of the type goes.
    pub fn range_text(&self) -> String {
        match self.kind {
            Kind::Int { min, max } => format!("{min}..={max}"),
            Kind::Float { min, max } if min.is_finite() || max.is_finite() => {
                format!("{min}..={max}")
            }
            Kind::OneOf(allowed) => allowed.join(", "),
            Kind::Format(f) if self.rejected.is_none() => f.to_owned(),
            _ => String::new(),
        }
    }

    /// The default in words; empty when there is none.
    pub fn default_text(&self) -> String {
        match self.default {
            Default::None => String::new(),
            Default::Bool(b) => b.to_string(),
            Default::Int(i) => i.to_string(),
            Default::Float(f) => f.to_string(),
            Default::Text(t) => t.to_owned(),
            Default::Computed(words) => words.to_owned(),
        }
    }

    fn default_json(&self) -> Value {
        match self.default {
            Default::None => Value::Null,
            Default::Bool(b) => json!(b),
            Default::Int(i) => json!(i),
            Default::Float(f) => json!(f),
            Default::Text(t) => json!(t),
            Default::Computed(words) => json!({ "computed": words }),
        }
    }

    /// The declaration as JSON (`logferry config-reference --format json`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "name": self.name,
            "type": self.type_name(),
            "default": self.default_json(),
            "required": self.required,
            "secret": self.secret,
            "meaning": self.meaning,
        });
        match self.kind {
            Kind::Int { min, max } => v["range"] = json!({"min": min, "max": max}),
            Kind::Float { min, max } if min.is_finite() || max.is_finite() => {
                v["range"] = json!({"min": min, "max": max})
            }
            Kind::OneOf(allowed) => v["allowed"] = json!(allowed),
            Kind::Format(f) if self.rejected.is_none() => v["format"] = json!(f),
            Kind::Dict(Some(set)) => v["keys"] = set.to_json()["keys"].clone(),
            _ => {}
        }
        if !self.aliases.is_empty() {
            v["aliases"] = json!(self.aliases);
        }
        if let Some(why) = self.rejected {
            v["rejected"] = json!(why);
        }
        if self.testing_only {
            v["testing_only"] = json!(true);
        }
        v
    }
}

/// The keys of one dictionary of the configuration (globals, one output kind's `config`, one service kind).
#[derive(Debug, PartialEq)]
pub struct KeySet {
    /// Dotted id, also the name of its generated docs region: `globals`, `outputs.syslog`, `inputs.aws.cloudtrail_api`.
    pub id: &'static str,
    /// Where in the file these keys go, e.g. `outputs.<name>.config` with `type: syslog`.
    pub place: &'static str,
    /// Its own keys, then keys shared with other sets (connection, TLS, retries ...), in table order.
    pub groups: &'static [&'static [Key]],
}

impl KeySet {
    /// Every key, nested sets not expanded.
    pub fn keys(&self) -> impl Iterator<Item = &'static Key> + '_ {
        self.groups.iter().flat_map(|g| g.iter())
    }

    /// The key called `name` (or with that alias).
    pub fn find(&self, name: &str) -> Option<&'static Key> {
        self.keys()
            .find(|k| k.name == name || k.aliases.contains(&name))
    }

    /// The set as JSON: id, place and every key (nested sets inline under their key).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "place": self.place,
            "keys": self.keys().map(Key::to_json).collect::<Vec<_>>(),
        })
    }

    /// The parameter table in markdown: `| key | type | default | range / allowed | meaning |`, nested sets
    /// inline as `parent.key`.
    pub fn render_markdown(&self) -> String {
        let mut out = String::from(
            "| key | type | default | range / allowed | meaning |\n| --- | --- | --- | --- | --- |\n",
        );
        self.rows("", &mut out);
        out
    }

    fn rows(&self, prefix: &str, out: &mut String) {
        for key in self.keys() {
            let mut name = format!("`{prefix}{}`", key.name);
            for alias in key.aliases {
                let _ = write!(name, " (or `{prefix}{alias}`)");
            }
            let mut meaning = String::new();
            if let Some(why) = key.rejected {
                let _ = write!(meaning, "**rejected**: {why}");
            } else {
                if key.required {
                    meaning.push_str("**mandatory**. ");
                }
                if key.testing_only {
                    meaning.push_str("**testing only**: ");
                }
                meaning.push_str(key.meaning);
                if key.secret {
                    meaning.push_str(" (secret: never logged)");
                }
            }
            let default = match key.default_text() {
                d if d.is_empty() => "—".to_owned(),
                d => code_if_markup(d),
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                key.type_name(),
                cell(&default),
                cell(&code_if_markup(key.range_text())),
                cell(&meaning)
            );
            if let Kind::Dict(Some(set)) = key.kind {
                set.rows(&format!("{prefix}{}.", key.name), out);
            }
        }
    }
}

/// Text with `<...>` placeholders as code, so that markdown does not take them for HTML (text that already has code
/// spans is left as it is).
fn code_if_markup(text: String) -> String {
    if text.contains('<') && !text.contains('`') {
        format!("`{text}`")
    } else {
        text
    }
}

/// A table cell: pipes escaped, line breaks joined.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Marker of the start of a generated region in docs/*.md; the region ends at [`END_MARK`].
pub fn start_mark(id: &str) -> String {
    format!("<!-- generated: {id} -->")
}

/// Marker of the end of a generated region.
pub const END_MARK: &str = "<!-- end generated -->";

/// A generated region of a docs page whose content differs from the declarations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleRegion {
    pub id: String,
}

/// Problems of a docs page's generated regions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocsRegionError {
    #[error("region \"{id}\" has no {END_MARK} after its start")]
    Unterminated { id: String },
    #[error("region \"{id}\" names no declared key set")]
    UnknownSet { id: String },
}

/// Rewrites every generated region of `page` from `sets`; returns the new text and the ids of the regions whose
/// content changed.
pub fn refresh_regions(
    page: &str,
    sets: &[&KeySet],
) -> Result<(String, Vec<StaleRegion>), DocsRegionError> {
    const START: &str = "<!-- generated: ";
    let mut out = String::with_capacity(page.len());
    let mut stale = Vec::new();
    let mut rest = page;
    // A marker starts a line (prose may quote one inside a line).
    let marker_at = |text: &str| {
        text.match_indices(START)
            .map(|(i, _)| i)
            .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
    };
    while let Some(at) = marker_at(rest) {
        let (before, from_mark) = rest.split_at(at);
        out.push_str(before);
        let mark_end = from_mark.find("-->").map_or(from_mark.len(), |e| e + 3);
        let id = from_mark[START.len()..mark_end.saturating_sub(3)]
            .trim()
            .to_owned();
        let body_and_rest = &from_mark[mark_end..];
        let Some(end) = body_and_rest.find(END_MARK) else {
            return Err(DocsRegionError::Unterminated { id });
        };
        let Some(set) = sets.iter().find(|s| s.id == id) else {
            return Err(DocsRegionError::UnknownSet { id });
        };
        let fresh = format!("\n{}", set.render_markdown());
        if body_and_rest[..end] != fresh {
            stale.push(StaleRegion { id: id.clone() });
        }
        out.push_str(&from_mark[..mark_end]);
        out.push_str(&fresh);
        out.push_str(END_MARK);
        rest = &body_and_rest[end + END_MARK.len()..];
    }
    out.push_str(rest);
    Ok((out, stale))
}

#[cfg(test)]
mod tests {
    use super::*;

    static NESTED: KeySet = KeySet {
        id: "t.nested",
        place: "t.nested",
        groups: &[&[Key::text("url", "the server").required().secret()]],
    };
    static SET: KeySet = KeySet {
        id: "t",
        place: "t",
        groups: &[
            &[
                Key::int("port", 443, 1, 65535, "the port"),
                Key::dict("nested", Some(&NESTED), "a | nested one"),
            ],
            &[Key::rejected("proxy", "proxies are not supported")],
        ],
    };

    #[test]
    fn the_table_shows_nested_keys_inline_and_escapes_pipes() {
        let table = SET.render_markdown();
        assert!(
            table.contains("| `port` | integer | 443 | 1..=65535 | the port |"),
            "{table}"
        );
        assert!(
            table.contains("| `nested` | dictionary | — |  | a \\| nested one |"),
            "{table}"
        );
        assert!(
            table.contains("| `nested.url` | string | — |  | **mandatory**. the server (secret: never logged) |"),
            "{table}"
        );
        assert!(
            table.contains("| `proxy` | string | — |  | **rejected**: proxies are not supported |")
        );
    }

    #[test]
    fn regions_are_refreshed_and_stale_ones_named() {
        let page = format!(
            "# x, quoting `{}` in prose\n{}\nold\n{END_MARK}\ntail\n",
            start_mark("t"),
            start_mark("t")
        );
        let (fresh, stale) = refresh_regions(&page, &[&SET]).unwrap();
        assert_eq!(stale, vec![StaleRegion { id: "t".into() }]);
        assert!(
            fresh.contains("in prose\n<!-- generated: t -->\n| key |"),
            "{fresh}"
        );
        assert!(fresh.ends_with(&format!("{END_MARK}\ntail\n")));
        let (again, stale) = refresh_regions(&fresh, &[&SET]).unwrap();
        assert!(stale.is_empty());
        assert_eq!(again, fresh);
        let unknown = format!("{}\n{END_MARK}", start_mark("nope"));
        assert_eq!(
            refresh_regions(&unknown, &[&SET]),
            Err(DocsRegionError::UnknownSet { id: "nope".into() })
        );
    }

    #[test]
    fn json_carries_range_allowed_values_and_rejection() {
        let v = SET.to_json();
        assert_eq!(v["keys"][0]["range"], json!({"min": 1, "max": 65535}));
        assert_eq!(v["keys"][1]["keys"][0]["secret"], json!(true));
        assert_eq!(v["keys"][2]["rejected"], json!("proxies are not supported"));
    }
}
