//! Tag templates of seed 002: `cloud.aws.cloudtrail.{event_type}.{account_id}.{region_id}.{format_version}`.
//! Validated once at configuration time; rendered per event through a small cache of recent tags.

/// The placeholders a tag template may use (seed 002, AwsModuleDefinitionError 6).
pub const PLACEHOLDERS: [&str; 6] = [
    "event_type",
    "account_id",
    "region_id",
    "format_version",
    "environment",
    "service_name",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    EventType,
    AccountId,
    RegionId,
    Fixed(String),
}

/// Why a template is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("tag \"{0}\" is containing some unexpected placeholders, the allowed ones are: {PLACEHOLDERS:?}")]
    UnknownPlaceholder(String),
    #[error("tag \"{0}\" has an unclosed '{{'")]
    Unclosed(String),
    #[error("tag \"{0}\" uses {{environment}} but no \"environment\" is configured")]
    NoEnvironment(String),
    #[error("tag \"{0}\" is empty or has an empty section")]
    Empty(String),
}

/// A parsed template. `{format_version}`, `{environment}` and `{service_name}` are fixed at configuration time;
/// `{event_type}`, `{account_id}` and `{region_id}` per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    source: String,
    parts: Vec<Part>,
}

/// Values of the per-event placeholders.
#[derive(Debug, Clone, Copy)]
pub struct TagVars<'a> {
    pub event_type: &'a str,
    pub account_id: &'a str,
    pub region_id: &'a str,
}

impl TagTemplate {
    pub fn parse(
        source: &str,
        format_version: &str,
        environment: Option<&str>,
        service_name: &str,
    ) -> Result<TagTemplate, TagError> {
        if source.is_empty() || source.split('.').any(str::is_empty) {
            return Err(TagError::Empty(source.into()));
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| TagError::Unclosed(source.into()))?
                + open;
            let name = &rest[open + 1..close];
            parts.push(match name {
                "event_type" => Part::EventType,
                "account_id" => Part::AccountId,
                "region_id" => Part::RegionId,
                "format_version" => Part::Fixed(format_version.to_owned()),
                "service_name" => Part::Fixed(service_name.to_owned()),
                "environment" => Part::Fixed(
                    environment
                        .ok_or_else(|| TagError::NoEnvironment(source.into()))?
                        .to_owned(),
                ),
                _ => return Err(TagError::UnknownPlaceholder(source.into())),
            });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(TagError::UnknownPlaceholder(source.into()));
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_owned()));
        }
        Ok(TagTemplate {
            source: source.to_owned(),
            parts,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the tag does not depend on the event.
    pub fn is_fixed(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Lit(_) | Part::Fixed(_)))
    }

    pub fn render(&self, v: TagVars<'_>) -> String {
        let mut out = String::with_capacity(64);
        for p in &self.parts {
            match p {
                Part::Lit(s) | Part::Fixed(s) => out.push_str(s),
                Part::EventType => out.push_str(v.event_type),
                Part::AccountId => out.push_str(v.account_id),
                Part::RegionId => out.push_str(v.region_id),
            }
        }
        out
    }
}

/// Renders with a small cache of recent tags: the records of one CloudTrail file come from a handful of event
/// sources, accounts and regions, so a tag is rendered (and allocated) once per combination, not per event.
#[derive(Debug, Default)]
pub struct TagCache {
    entries: Vec<CachedTag>,
    /// The entry that matched last (checked first).
    last: usize,
    /// The entry replaced next when the cache is full.
    next_victim: usize,
}

#[derive(Debug)]
struct CachedTag {
    template: usize,
    event_type: String,
    account_id: String,
    region_id: String,
    tag: String,
}

impl CachedTag {
    fn matches(&self, template: usize, v: &TagVars<'_>) -> bool {
        self.template == template
            && self.event_type == v.event_type
            && self.account_id == v.account_id
            && self.region_id == v.region_id
    }
}

/// Combinations kept by a [`TagCache`].
const TAG_CACHE_SIZE: usize = 32;

impl TagCache {
    pub fn get(&mut self, t: &TagTemplate, v: TagVars<'_>) -> &str {
        let id = t as *const TagTemplate as usize;
        let hit = match self.entries.get(self.last) {
            Some(e) if e.matches(id, &v) => Some(self.last),
            _ => self.entries.iter().position(|e| e.matches(id, &v)),
        };
        self.last = hit.unwrap_or_else(|| self.insert(id, t, v));
        &self.entries[self.last].tag
    }

    fn insert(&mut self, id: usize, t: &TagTemplate, v: TagVars<'_>) -> usize {
        let entry = CachedTag {
            template: id,
            event_type: v.event_type.to_owned(),
            account_id: v.account_id.to_owned(),
            region_id: v.region_id.to_owned(),
            tag: t.render(v),
        };
        if self.entries.len() < TAG_CACHE_SIZE {
            self.entries.push(entry);
            return self.entries.len() - 1;
        }
        let at = self.next_victim;
        self.next_victim = (at + 1) % TAG_CACHE_SIZE;
        self.entries[at] = entry;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let t = TagTemplate::parse("cloud.aws.cloudtrail.{event_type}.{account_id}.{region_id}.{format_version}.{environment}", "1", Some("prod-1"), "x")
            .unwrap();
        let v = TagVars {
            event_type: "s3",
            account_id: "123456789012",
            region_id: "us-east-8",
        };
        assert_eq!(
            t.render(v),
            "cloud.aws.cloudtrail.s3.123456789012.us-east-8.1.prod-1"
        );
        assert!(!t.is_fixed());
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(matches!(
            TagTemplate::parse("a.{bogus}", "1", None, "x"),
            Err(TagError::UnknownPlaceholder(_))
        ));
        assert!(matches!(
            TagTemplate::parse("a.{event_type", "1", None, "x"),
            Err(TagError::Unclosed(_))
        ));
        assert!(matches!(
            TagTemplate::parse("a.{environment}", "1", None, "x"),
            Err(TagError::NoEnvironment(_))
        ));
        assert!(matches!(
            TagTemplate::parse("a..b", "1", None, "x"),
            Err(TagError::Empty(_))
        ));
        assert!(
            TagTemplate::parse("my.app.{service_name}", "1", None, "svc")
                .unwrap()
                .is_fixed()
        );
    }

    #[test]
    fn cache_returns_the_tag_of_each_combination() {
        let a =
            TagTemplate::parse("x.{event_type}.{account_id}.{region_id}", "1", None, "x").unwrap();
        let b = TagTemplate::parse("y.{event_type}", "1", None, "x").unwrap();
        let mut cache = TagCache::default();
        // More combinations than the cache holds, revisited in an order that evicts and refills entries.
        for round in 0..3 {
            for n in 0..(TAG_CACHE_SIZE + 7) {
                let (t, prefix) = if (n + round) % 3 == 0 {
                    (&b, "y")
                } else {
                    (&a, "x")
                };
                let et = format!("t{}", n % 11);
                let acc = format!("{}", n % 5);
                let v = TagVars {
                    event_type: &et,
                    account_id: &acc,
                    region_id: "r",
                };
                let want = if prefix == "y" {
                    format!("y.{et}")
                } else {
                    format!("x.{et}.{acc}.r")
                };
                assert_eq!(cache.get(t, v), want);
                assert_eq!(cache.get(t, v), want, "second lookup");
            }
        }
        assert!(cache.entries.len() <= TAG_CACHE_SIZE);
    }
}
