//! `Section`: reads one dictionary of the configuration, collecting every problem instead of stopping at the
//! first, and reporting the keys nobody asked for. Every component's config struct is built through it.

use super::error::{ConfigError, ConfigErrorKind};
use super::keys::{Default, Key, KeySet, Kind};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Shared sink of problems for one validation pass.
#[derive(Clone, Default)]
pub struct Diagnostics(Rc<RefCell<Vec<ConfigError>>>);

impl Diagnostics {
    pub fn push(&self, e: ConfigError) {
        self.0.borrow_mut().push(e);
    }
    pub fn take(&self) -> Vec<ConfigError> {
        std::mem::take(&mut self.0.borrow_mut())
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.borrow().is_empty()
    }
}

/// A secret string (key, token, password): never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Conversion of a JSON/YAML value into a typed setting.
pub trait FromValue: Sized {
    /// The type's name in error messages ("an integer", "a string"...).
    const EXPECTED: &'static str;
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for bool {
    const EXPECTED: &'static str = "a boolean (true/false)";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_bool()
    }
}
impl FromValue for String {
    const EXPECTED: &'static str = "a string";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_str().map(str::to_owned)
    }
}
impl FromValue for Secret {
    const EXPECTED: &'static str = "a string";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_str().map(|s| Secret(s.to_owned()))
    }
}
impl FromValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_f64()
    }
}
impl FromValue for Vec<String> {
    const EXPECTED: &'static str = "a list of strings";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_array()?
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect()
    }
}
macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            const EXPECTED: &'static str = "an integer";
            fn from_value(v: &Value) -> Option<Self> {
                if let Some(i) = v.as_i64() { return <$t>::try_from(i).ok(); }
                if let Some(u) = v.as_u64() { return <$t>::try_from(u).ok(); }
                None
            }
        }
    )*};
}
int_from_value!(i64, u64, u32, u16, u8, usize, i32);

/// Reader over one dictionary of the configuration.
pub struct Section<'a> {
    path: String,
    map: &'a Map<String, Value>,
    used: RefCell<HashSet<&'a str>>,
    diagnostics: Diagnostics,
    /// Directory relative file paths are resolved against (the config file's directory).
    base_dir: Rc<PathBuf>,
}

impl<'a> Section<'a> {
    pub fn new(
        path: impl Into<String>,
        map: &'a Map<String, Value>,
        diagnostics: Diagnostics,
        base_dir: &Path,
    ) -> Self {
        Section {
            path: path.into(),
            map,
            used: RefCell::default(),
            diagnostics,
            base_dir: Rc::new(base_dir.to_path_buf()),
        }
    }

    /// Dotted path of this section (`inputs.aws.services.x`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Dotted path of a key in this section.
    pub fn key_path(&self, key: &str) -> String {
        if key.is_empty() {
            self.path.clone()
        } else if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{}", self.path, key)
        }
    }

    pub fn diagnostics(&self) -> &Diagnostics {
        &self.diagnostics
    }

    /// Records a problem about `key`.
    pub fn error(&self, key: &str, kind: ConfigErrorKind, message: impl Into<String>) {
        self.diagnostics
            .push(ConfigError::new(kind, self.key_path(key), message));
    }

    /// The raw value of `key`, marked as used.
    fn raw(&self, key: &str) -> Option<&'a Value> {
        let (k, v) = self.map.get_key_value(key)?;
        self.used.borrow_mut().insert(k.as_str());
        Some(v)
    }

    fn convert<T: FromValue>(&self, key: &str, v: &Value) -> Option<T> {
        let t = T::from_value(v);
        if t.is_none() && T::EXPECTED == "an integer" && (v.is_i64() || v.is_u64()) {
            self.error(
                key,
                ConfigErrorKind::OutOfRange,
                format!("value {v} is out of range for this property"),
            );
        } else if t.is_none() {
            self.error(
                key,
                ConfigErrorKind::WrongType,
                format!("property must be {}, found {}", T::EXPECTED, describe(v)),
            );
        }
        t
    }

    /// An optional setting: `None` when absent or null (a wrong type is recorded and also gives `None`).
    fn optional<T: FromValue>(&self, key: &str) -> Option<T> {
        match self.raw(key) {
            None | Some(Value::Null) => None,
            Some(v) => self.convert(key, v),
        }
    }

    /// A mandatory setting: missing, null or empty strings are recorded as `Missing`.
    fn required<T: FromValue>(&self, key: &str) -> Option<T> {
        match self.raw(key) {
            None | Some(Value::Null) => {
                self.error(
                    key,
                    ConfigErrorKind::Missing,
                    "mandatory property is missing or empty",
                );
                None
            }
            Some(Value::String(s)) if s.is_empty() => {
                self.error(
                    key,
                    ConfigErrorKind::Missing,
                    "mandatory property is missing or empty",
                );
                None
            }
            Some(v) => self.convert(key, v),
        }
    }

    /// A setting with a default.
    fn or<T: FromValue>(&self, key: &str, default: T) -> T {
        self.optional(key).unwrap_or(default)
    }

    /// The name of a JSON member the collector writes or looks up as text (a stable event id's), when given: one
    /// that needs escaping is recorded as an invalid value (None).
    pub fn json_member_name(&self, declared: &Key) -> Option<String> {
        let key = self.present_name(declared);
        let name: String = self.get_opt(declared)?;
        if !crate::event::is_plain_json_name(&name) {
            self.error(
                key,
                ConfigErrorKind::InvalidValue,
                format!(
                    "{name:?} must be printable ASCII without '\"' or '\\' (a JSON member name)"
                ),
            );
            return None;
        }
        Some(name)
    }

    /// A number with a default and an inclusive range; out-of-range values are recorded and the default is used.
    fn in_range<T: FromValue + PartialOrd + Display + Copy>(
        &self,
        key: &str,
        default: T,
        range: RangeInclusive<T>,
    ) -> T {
        match self.optional::<T>(key) {
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                self.error(
                    key,
                    ConfigErrorKind::OutOfRange,
                    format!(
                        "value {v} is out of range {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            None => default,
        }
    }

    /// A string that must be one of `allowed`.
    fn one_of(&self, key: &str, default: &str, allowed: &[&str]) -> String {
        match self.optional::<String>(key) {
            Some(v) if allowed.contains(&v.as_str()) => v,
            Some(v) => {
                self.error(
                    key,
                    ConfigErrorKind::InvalidValue,
                    format!("\"{v}\" is not one of {allowed:?}"),
                );
                default.to_owned()
            }
            None => default.to_owned(),
        }
    }

    /// A readable file path (resolved against the config file's directory); problems are recorded.
    fn file(&self, key: &str, required: bool) -> Option<PathBuf> {
        let name: String = if required {
            self.required(key)?
        } else {
            self.optional(key)?
        };
        let path = self.base_dir.join(&name);
        match std::fs::File::open(&path) {
            Ok(_) if path.is_file() => Some(path),
            Ok(_) => {
                self.error(
                    key,
                    ConfigErrorKind::FileUnreadable,
                    format!("\"{}\" is not a regular file", path.display()),
                );
                None
            }
            Err(e) => {
                self.error(
                    key,
                    ConfigErrorKind::FileUnreadable,
                    format!("cannot read \"{}\": {e}", path.display()),
                );
                None
            }
        }
    }

    /// A nested dictionary; `None` (and recorded) when missing and `required`, or not a dictionary.
    fn section(&self, key: &str, required: bool) -> Option<Section<'a>> {
        match self.raw(key) {
            None | Some(Value::Null) => {
                if required {
                    self.error(
                        key,
                        ConfigErrorKind::Missing,
                        "mandatory property is missing or empty",
                    );
                }
                None
            }
            Some(Value::Object(map)) => Some(self.child(key, map)),
            Some(v) => {
                self.error(
                    key,
                    ConfigErrorKind::NotADictionary,
                    format!("property must be a dictionary, found {}", describe(v)),
                );
                None
            }
        }
    }

    /// Every entry of a dictionary of dictionaries (e.g. `services`), each as a section; other values are recorded.
    pub fn entries(&self) -> Vec<(&'a str, Section<'a>)> {
        let mut out = Vec::new();
        for (k, v) in self.map.iter() {
            self.used.borrow_mut().insert(k.as_str());
            match v {
                Value::Object(map) => out.push((k.as_str(), self.child(k, map))),
                other => self.error(
                    k,
                    ConfigErrorKind::NotADictionary,
                    format!("property must be a dictionary, found {}", describe(other)),
                ),
            }
        }
        out
    }

    /// A child section for an already-fetched map.
    fn child(&self, key: &str, map: &'a Map<String, Value>) -> Section<'a> {
        Section {
            path: self.key_path(key),
            map,
            used: RefCell::default(),
            diagnostics: self.diagnostics.clone(),
            base_dir: self.base_dir.clone(),
        }
    }

    /// A reader of the same dictionary whose problems are not recorded: a section read once more with other
    /// context (a service configured once per region) reports its problems once, from its first reading.
    pub fn quiet_copy(&self) -> Section<'a> {
        Section {
            path: self.path.clone(),
            map: self.map,
            used: RefCell::default(),
            diagnostics: Diagnostics::default(),
            base_dir: self.base_dir.clone(),
        }
    }

    /// Reports every key of this section that was not read (unknown keys are never silently dropped).
    pub fn finish(self) {
        let used = self.used.borrow();
        for key in self.map.keys() {
            if !used.contains(key.as_str()) {
                self.error(
                    key,
                    ConfigErrorKind::UnknownKey,
                    "unknown property (not used by this component)",
                );
            }
        }
    }

    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    // Reading declared keys: the default, range and allowed values come from the key's declaration.

    /// The name under which `key` is present (its name or the first alias present), else its name: the name a
    /// problem of the key is recorded under.
    pub fn present_name(&self, key: &Key) -> &'static str {
        std::iter::once(key.name)
            .chain(key.aliases.iter().copied())
            .find(|n| self.map.contains_key(*n))
            .unwrap_or(key.name)
    }

    /// A declared boolean (default: the declaration's, else false).
    pub fn get_bool(&self, key: &Key) -> bool {
        let default = match key.default {
            Default::Bool(b) => b,
            _ => false,
        };
        self.or(self.present_name(key), default)
    }

    /// A declared integer with a default; out-of-range values are recorded and the default is used.
    pub fn get_int<T: DeclaredInt>(&self, key: &Key) -> T {
        let Default::Int(default) = key.default else {
            panic!(
                "{} is declared without an integer default: use get_int_or/get_int_opt",
                key.name
            )
        };
        self.get_int_or(key, declared(key, default))
    }

    /// A declared integer whose default the component computes.
    pub fn get_int_or<T: DeclaredInt>(&self, key: &Key, default: T) -> T {
        self.in_range(self.present_name(key), default, int_range(key))
    }

    /// A declared integer without a default: `None` when absent (recorded when the key is required) or invalid.
    pub fn get_int_opt<T: DeclaredInt>(&self, key: &Key) -> Option<T> {
        let name = self.present_name(key);
        let value: T = if key.required {
            self.required(name)?
        } else {
            self.optional(name)?
        };
        let range = int_range::<T>(key);
        if range.contains(&value) {
            return Some(value);
        }
        self.error(
            name,
            ConfigErrorKind::OutOfRange,
            format!(
                "value {value} is out of range {}..={}",
                range.start(),
                range.end()
            ),
        );
        None
    }

    /// A declared number; out-of-range values are recorded and the default is used.
    pub fn get_float(&self, key: &Key) -> f64 {
        let (Kind::Float { min, max }, Default::Float(default)) = (key.kind, key.default) else {
            panic!("{} is not declared as a number with a default", key.name)
        };
        self.in_range(self.present_name(key), default, min..=max)
    }

    /// Declared text: the declaration's default when absent; `None` when absent without a default (recorded
    /// when required).
    pub fn get_text(&self, key: &Key) -> Option<String> {
        let name = self.present_name(key);
        if key.required {
            return self.required(name);
        }
        match key.default {
            Default::Text(default) => Some(self.or(name, default.to_owned())),
            _ => self.optional(name),
        }
    }

    /// A declared secret (never printed by `Debug`).
    pub fn get_secret(&self, key: &Key) -> Option<Secret> {
        self.get_text(key).map(Secret)
    }

    /// A declared list of strings (`None` when absent; recorded when required).
    pub fn get_list(&self, key: &Key) -> Option<Vec<String>> {
        self.get_opt(key)
    }

    /// A declared key of any type without a default: `None` when absent (recorded when required) or of the wrong
    /// type.
    pub fn get_opt<T: FromValue>(&self, key: &Key) -> Option<T> {
        let name = self.present_name(key);
        if key.required {
            self.required(name)
        } else {
            self.optional(name)
        }
    }

    /// A declared number without a default: `None` when absent (recorded when required) or out of range
    /// (recorded).
    pub fn get_float_opt(&self, key: &Key) -> Option<f64> {
        let Kind::Float { min, max } = key.kind else {
            panic!("{} is not declared as a number", key.name)
        };
        let v = self.in_range(self.present_name(key), f64::NAN, min..=max);
        (!v.is_nan()).then_some(v)
    }

    /// A declared choice: one of the allowed values, else recorded and the default.
    pub fn get_choice(&self, key: &Key) -> String {
        let (Kind::OneOf(allowed), Default::Text(default)) = (key.kind, key.default) else {
            panic!("{} is not declared as a choice with a default", key.name)
        };
        self.one_of(self.present_name(key), default, allowed)
    }

    /// A declared file: readable, resolved against the config file's directory.
    pub fn get_file(&self, key: &Key) -> Option<PathBuf> {
        self.file(self.present_name(key), key.required)
    }

    /// A declared file that this configuration needs when `needed` although its declaration does not always
    /// (a client key with its certificate).
    pub fn get_file_needed(&self, key: &Key, needed: bool) -> Option<PathBuf> {
        self.file(self.present_name(key), needed)
    }

    /// A declared nested dictionary.
    pub fn get_section(&self, key: &Key) -> Option<Section<'a>> {
        self.section(self.present_name(key), key.required)
    }

    /// The raw value of a declared key whose format the component checks itself (recorded when required and
    /// missing).
    pub fn get_raw(&self, key: &Key) -> Option<&'a Value> {
        let name = self.present_name(key);
        match self.raw(name) {
            None | Some(Value::Null) if key.required => {
                self.error(
                    name,
                    ConfigErrorKind::Missing,
                    "mandatory property is missing or empty",
                );
                None
            }
            None | Some(Value::Null) => None,
            v => v,
        }
    }

    /// The value of a declared key as written (null included), marked as used: for a component that checks the
    /// value's format itself, with its own error messages.
    pub fn get_value(&self, key: &Key) -> Option<&'a Value> {
        self.raw(self.present_name(key))
    }

    /// Whether a declared key is present (under its name or an alias), without reading it.
    pub fn has(&self, key: &Key) -> bool {
        self.map.contains_key(self.present_name(key))
    }

    /// A declared key that this configuration needs although its declaration does not always (mandatory with
    /// another key's value, e.g. `url` with `type: redis`): recorded as `Missing` when absent, null or empty.
    pub fn get_required<T: FromValue>(&self, key: &Key) -> Option<T> {
        self.required(self.present_name(key))
    }

    /// A declared nested dictionary, or an empty one when absent (recorded when not a dictionary): a component
    /// whose defaults all apply without the section.
    pub fn get_section_or_empty(&self, key: &Key) -> Section<'a> {
        static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
        self.get_section(key)
            .unwrap_or_else(|| self.child(self.present_name(key), &EMPTY))
    }

    /// Marks declared keys as known without reading them (documentation-only keys, or keys another reader of
    /// the same dictionary reads).
    pub fn accept_declared(&self, keys: &[&Key]) {
        for key in keys {
            self.raw(self.present_name(key));
        }
    }

    /// Records a problem for each present key of `keys` that is declared as rejected, with the declared reason.
    pub fn refuse_rejected(&self, keys: &KeySet) {
        for key in keys.keys() {
            if let (Some(why), true) = (key.rejected, self.map.contains_key(key.name)) {
                self.raw(key.name);
                self.error(key.name, ConfigErrorKind::InvalidValue, why);
            }
        }
    }
}

/// The integer types declared keys are read as.
pub trait DeclaredInt: FromValue + PartialOrd + Display + Copy + TryFrom<i64> {}
impl<T: FromValue + PartialOrd + Display + Copy + TryFrom<i64>> DeclaredInt for T {}

/// A declared bound or default as `T`; a declaration that does not fit its type is a programming error.
fn declared<T: DeclaredInt>(key: &Key, value: i64) -> T {
    T::try_from(value)
        .unwrap_or_else(|_| panic!("{}: declared value {value} does not fit its type", key.name))
}

fn int_range<T: DeclaredInt>(key: &Key) -> RangeInclusive<T> {
    let Kind::Int { min, max } = key.kind else {
        panic!("{} is not declared as an integer", key.name)
    };
    declared(key, min)..=declared(key, max)
}

/// A short description of a value for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string \"{}\"", s.chars().take(40).collect::<String>()),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a dictionary".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_section(v: Value, f: impl FnOnce(&Section)) -> Vec<ConfigError> {
        let d = Diagnostics::default();
        let map = v.as_object().unwrap().clone();
        let s = Section::new("globals", &map, d.clone(), Path::new("."));
        f(&s);
        s.finish();
        d.take()
    }

    #[test]
    fn declared_keys_give_defaults_ranges_and_rejections() {
        use crate::config::keys::{Key, KeySet};
        const PORT: Key = Key::int("port", 443, 1, 65535, "the port");
        const HOST: Key = Key::text("host", "the host").required();
        const MODE: Key = Key::one_of("mode", "a", &["a", "b"], "the mode").aliases(&["old_mode"]);
        static SET: KeySet = KeySet {
            id: "t",
            place: "t",
            groups: &[&[
                PORT,
                HOST,
                MODE,
                Key::rejected("proxy", "proxies are not supported"),
            ]],
        };
        let errs = with_section(json!({"port": 0, "old_mode": "c", "proxy": "p"}), |s| {
            assert_eq!(s.get_int::<u16>(&PORT), 443);
            assert_eq!(s.get_text(&HOST), None);
            assert_eq!(s.get_choice(&MODE), "a");
            s.refuse_rejected(&SET);
        });
        let found: Vec<_> = errs.iter().map(|e| (e.path.as_str(), e.kind)).collect();
        assert_eq!(
            found,
            [
                ("globals.port", ConfigErrorKind::OutOfRange),
                ("globals.host", ConfigErrorKind::Missing),
                ("globals.old_mode", ConfigErrorKind::InvalidValue),
                ("globals.proxy", ConfigErrorKind::InvalidValue),
            ]
        );
        assert_eq!(errs[0].message, "value 0 is out of range 1..=65535");
        assert_eq!(errs[3].message, "proxies are not supported");
    }

    #[test]
    fn collects_every_problem_with_its_path() {
        let errs = with_section(json!({"a": "x", "b": 900, "c": "q", "zz": 1}), |s| {
            let _: Option<u32> = s.required("a");
            let _ = s.in_range("b", 10u32, 1..=100);
            let _ = s.one_of("c", "p", &["p", "r"]);
            let _: Option<String> = s.required("missing");
        });
        let kinds: Vec<_> = errs.iter().map(|e| (e.kind, e.path.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (ConfigErrorKind::WrongType, "globals.a"),
                (ConfigErrorKind::OutOfRange, "globals.b"),
                (ConfigErrorKind::InvalidValue, "globals.c"),
                (ConfigErrorKind::Missing, "globals.missing"),
                (ConfigErrorKind::UnknownKey, "globals.zz"),
            ]
        );
    }

    #[test]
    fn negative_number_for_unsigned_is_out_of_range() {
        let errs = with_section(json!({"n": -5}), |s| {
            assert_eq!(s.in_range("n", 7u32, 1..=10), 7);
        });
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind, ConfigErrorKind::OutOfRange);
    }

    #[test]
    fn secrets_are_not_printed() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret(***)");
    }
}
