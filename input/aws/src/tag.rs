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
/// sources, accounts and regions, so a tag is rendered (and allocated) once per combination, not per event. The
/// cache is indexed by a hash of the template and the values: a lookup is one hash and, nearly always, one
/// comparison (a few neighbouring slots are tried when combinations share a slot).
#[derive(Debug)]
pub struct TagCache {
    slots: Vec<Option<CachedTag>>,
}

impl Default for TagCache {
    fn default() -> Self {
        TagCache {
            slots: (0..TAG_CACHE_SLOTS).map(|_| None).collect(),
        }
    }
}

#[derive(Debug)]
struct CachedTag {
    hash: u64,
    template: usize,
    event_type: String,
    account_id: String,
    region_id: String,
    tag: String,
}

impl CachedTag {
    fn matches(&self, hash: u64, template: usize, v: &TagVars<'_>) -> bool {
        self.hash == hash
            && self.template == template
            && self.event_type == v.event_type
            && self.account_id == v.account_id
            && self.region_id == v.region_id
    }
}

/// Slots of a [`TagCache`] (a power of two: 2 to the 6, the hash bits that pick one).
const TAG_CACHE_SLOTS: usize = 64;

/// FxHash's step: cheap, and good enough to spread a few dozen short keys over the slots.
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

fn hash_str(h: u64, s: &str) -> u64 {
    let mut chunks = s.as_bytes().chunks_exact(8);
    let mut h = chunks.by_ref().fold(h, |h, c| {
        mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")))
    });
    let tail = chunks
        .remainder()
        .iter()
        .fold(s.len() as u64, |t, &b| t << 8 | u64::from(b));
    h = mix(h, tail);
    h
}

fn key_hash(template: usize, v: &TagVars<'_>) -> u64 {
    let h = mix(0, template as u64);
    let h = hash_str(h, v.event_type);
    let h = hash_str(h, v.account_id);
    hash_str(h, v.region_id)
}

/// Slots looked at for a combination, from the one its hash names (linear probing).
const TAG_CACHE_PROBES: usize = 4;

impl TagCache {
    pub fn get(&mut self, t: &TagTemplate, v: TagVars<'_>) -> &str {
        let template = t as *const TagTemplate as usize;
        let hash = key_hash(template, &v);
        // The high bits: the multiplication mixes best there.
        let home = (hash >> 58) as usize;
        // Slots are filled and replaced, never emptied: a combination lies before the first empty slot of its
        // probe sequence, so one pass finds it or the slot it goes to (the first one when all are taken).
        let mut hit = false;
        let at = (0..TAG_CACHE_PROBES)
            .map(|i| (home + i) % TAG_CACHE_SLOTS)
            .find(|&at| match &self.slots[at] {
                None => true,
                Some(e) => {
                    hit = e.matches(hash, template, &v);
                    hit
                }
            })
            .unwrap_or(home);
        if !hit {
            self.slots[at] = Some(CachedTag {
                hash,
                template,
                event_type: v.event_type.to_owned(),
                account_id: v.account_id.to_owned(),
                region_id: v.region_id.to_owned(),
                tag: t.render(v),
            });
        }
        &self.slots[at].as_ref().expect("found or filled").tag
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
            for n in 0..(TAG_CACHE_SLOTS + 7) {
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
        assert_eq!(cache.slots.len(), TAG_CACHE_SLOTS);
        // Values that only split differently are different combinations.
        let v = |e, a| TagVars {
            event_type: e,
            account_id: a,
            region_id: "",
        };
        assert_eq!(cache.get(&a, v("ab", "c")), "x.ab.c.");
        assert_eq!(cache.get(&a, v("a", "bc")), "x.a.bc.");
        assert_eq!(cache.get(&a, v("ab", "c")), "x.ab.c.");
    }
}
