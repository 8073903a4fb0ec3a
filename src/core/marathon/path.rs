//! Marathon's path ids: `/prod/db/postgres`, the names of apps and groups.
//!
//! A [`PathId`] is always absolute and normalised (no `.`, `..` or empty segments); relative
//! ids (`app`, `./app`, `../x/app`) are resolved against a base when parsed, as Marathon's
//! `canonicalPath` does (`..` above the root stays at the root).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Marathon's rule for one segment of an id (`PathId.ID_PATH_SEGMENT_PATTERN`), as shown in
/// its error message.
pub const SEGMENT_PATTERN: &str =
    "^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$";

/// Last segments an app or group id may not have (they collide with API routes).
pub const RESERVED_KEYWORDS: [&str; 5] = ["restart", "tasks", "versions", ".", ".."];

/// An absolute, normalised Marathon id. Displays and serialises as `/a/b`; the root is `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PathId(String);

impl PathId {
    /// The root group `/`.
    pub fn root() -> PathId {
        PathId("/".to_string())
    }

    /// Parses `s` (absolute, or relative to `base`), resolving `.` and `..`. Every segment must
    /// be lowercase letters, digits and `-`, in dot-separated labels that neither start nor
    /// end with `-` (Marathon's rule).
    pub fn parse(s: &str, base: &PathId) -> Result<PathId, String> {
        let raw: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        if let Some(bad) = raw.iter().find(|p| !valid_segment(p)) {
            return Err(format!("'{bad}' in '{s}' must fully match regular expression '{SEGMENT_PATTERN}'"));
        }
        let start: Vec<&str> = if s.starts_with('/') { Vec::new() } else { base.segments() };
        Ok(Self::resolve(start, &raw))
    }

    /// Like [`PathId::parse`] without checking the characters of the segments (for ids that
    /// were validated elsewhere, and for lookups by an id a client sent).
    pub fn parse_lenient(s: &str, base: &PathId) -> PathId {
        let raw: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        let start: Vec<&str> = if s.starts_with('/') { Vec::new() } else { base.segments() };
        Self::resolve(start, &raw)
    }

    fn resolve<'a>(mut out: Vec<&'a str>, raw: &[&'a str]) -> PathId {
        for part in raw {
            match *part {
                "." => {}
                ".." => {
                    out.pop();
                }
                p => out.push(p),
            }
        }
        PathId(format!("/{}", out.join("/")))
    }

    /// The id as a string (`/a/b`, or `/` for the root).
    pub fn as_str(&self) -> &str {
        if self.0.is_empty() { "/" } else { &self.0 }
    }

    pub fn is_root(&self) -> bool {
        self.as_str() == "/"
    }

    /// The enclosing group (the root's parent is the root).
    pub fn parent(&self) -> PathId {
        let segments = self.segments();
        match segments.split_last() {
            Some((_, init)) => PathId(format!("/{}", init.join("/"))),
            None => PathId::root(),
        }
    }

    /// The segments, outermost first (empty for the root).
    pub fn segments(&self) -> Vec<&str> {
        self.as_str().split('/').filter(|p| !p.is_empty()).collect()
    }

    /// The last segment (empty for the root).
    pub fn name(&self) -> &str {
        self.as_str().rsplit('/').next().unwrap_or("")
    }

    /// Whether `self` is a direct child of `other` (`/a/b` of `/a`), as Marathon requires of
    /// the apps and groups inside a group.
    pub fn is_child_of(&self, other: &PathId) -> bool {
        !self.is_root() && self.parent() == *other
    }

    /// Whether `self` is below `other` at any depth (`/a/b/c` of `/a`); never of itself.
    pub fn is_descendant_of(&self, other: &PathId) -> bool {
        self != other && (other.is_root() || self.as_str().starts_with(&format!("{}/", other.as_str())))
    }

    /// `self` with `name` appended.
    pub fn child(&self, name: &str) -> PathId {
        PathId::parse_lenient(name, self)
    }

    /// The first segment as a group (`/a` for `/a/b/c`; the root for the root).
    pub fn top_level(&self) -> PathId {
        match self.segments().first() {
            Some(first) => PathId(format!("/{first}")),
            None => PathId::root(),
        }
    }

    /// Whether the id is directly below the root (`/a`).
    pub fn is_top_level(&self) -> bool {
        !self.is_root() && self.parent().is_root()
    }

    /// The Mesos-DNS style name: segments innermost first, joined by dots (`c.b.a`).
    pub fn to_hostname(&self) -> String {
        let mut segments = self.segments();
        segments.reverse();
        segments.join(".")
    }

    /// Marathon's rules for the id of an app or group: valid segments, not ending with a
    /// reserved keyword. Returns Marathon's messages.
    pub fn violations(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if !self.segments().iter().all(|s| valid_segment(s)) {
            errors.push(format!("must fully match regular expression '{SEGMENT_PATTERN}'"));
        }
        if self.segments().last().is_some_and(|last| RESERVED_KEYWORDS.contains(last)) {
            errors.push(format!(
                "must not end with any of the following reserved keywords: {}",
                RESERVED_KEYWORDS.join(", ")
            ));
        }
        errors
    }
}

/// One segment by Marathon's `ID_PATH_SEGMENT_PATTERN`: `.`/`..`, or dot-separated labels of
/// `[a-z0-9-]` that do not start or end with `-`.
pub fn valid_segment(s: &str) -> bool {
    s == "." || s == ".." || valid_dotted_name(s)
}

/// Dot-separated labels of `[a-z0-9-]`, each starting and ending with a letter or digit.
pub fn valid_dotted_name(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(valid_label)
}

fn valid_label(l: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (l.chars().next(), l.chars().last()) {
        (Some(first), Some(last)) => ok(first) && ok(last) && l.chars().all(|c| ok(c) || c == '-'),
        _ => false,
    }
}

/// The RAML `PathId` pattern Marathon checks on every id string in a request before anything
/// else: each `/`-separated part is empty, `..`, or a dotted name (so `.` is rejected).
pub fn matches_raml_pattern(s: &str) -> bool {
    s.split('/').all(|p| p.is_empty() || p == ".." || valid_dotted_name(p))
}

impl fmt::Display for PathId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PathId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PathId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PathId::parse(&s, &PathId::root()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathId {
        PathId::parse(s, &PathId::root()).unwrap()
    }

    #[test]
    fn relative_ids_resolve_against_the_base() {
        let base = p("/a/b/c/d");
        let cases = [
            ("app", "/a/b/c/d/app"),
            ("./app", "/a/b/c/d/app"),
            ("../x/app", "/a/b/c/x/app"),
            ("./test/../e/f/g/./../", "/a/b/c/d/e/f"),
            ("/abs/app", "/abs/app"),
            ("/abs//app/", "/abs/app"),
            ("../../../../../..", "/"),
            ("", "/a/b/c/d"),
            ("/", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(PathId::parse(input, &base).unwrap().as_str(), want, "{input}");
        }
        assert_eq!(p("test/../a/b/c/d/d/../e/f/g/./../").as_str(), "/a/b/c/d/e/f");
    }

    #[test]
    fn segments_follow_marathons_rule() {
        for good in ["/a", "/foobar-0", "/a.b", "/a-b.c-d/e0", "/0", "/a/b/c"] {
            assert!(PathId::parse(good, &PathId::root()).is_ok(), "{good}");
        }
        for bad in ["/A", "/a_b", "/-a", "/a-", "/a..b", "/a./b", "/.a", "/@§'foobar-0", "/a b"] {
            let err = PathId::parse(bad, &PathId::root()).unwrap_err();
            assert!(err.contains("must fully match regular expression"), "{bad}: {err}");
        }
    }

    #[test]
    fn parents_children_and_names() {
        assert!(PathId::root().is_root());
        assert_eq!(PathId::root().parent(), PathId::root());
        assert_eq!(p("/a").parent(), PathId::root());
        assert_eq!(p("/a/b/c").parent(), p("/a/b"));
        assert_eq!(p("/a/b/c").segments(), vec!["a", "b", "c"]);
        assert!(PathId::root().segments().is_empty());
        assert!(p("/a/b").is_child_of(&p("/a")));
        assert!(!p("/a/b/c").is_child_of(&p("/a")));
        assert!(p("/a").is_child_of(&PathId::root()));
        assert!(!PathId::root().is_child_of(&PathId::root()));
        assert!(p("/a/b/c").is_descendant_of(&p("/a")));
        assert!(!p("/ab").is_descendant_of(&p("/a")));
        assert!(!p("/a").is_descendant_of(&p("/a")));
        assert_eq!(p("/a/b/c").to_hostname(), "c.b.a");
        assert_eq!(p("/a/b/c").name(), "c");
        assert_eq!(p("/a/b/c").top_level(), p("/a"));
        assert!(p("/a").is_top_level() && !p("/a/b").is_top_level() && !PathId::root().is_top_level());
        assert_eq!(p("/a").child("b"), p("/a/b"));
    }

    #[test]
    fn reserved_keywords_only_at_the_end() {
        for kw in ["restart", "tasks", "versions"] {
            assert_eq!(
                p(&format!("/foo/{kw}")).violations(),
                vec!["must not end with any of the following reserved keywords: restart, tasks, versions, ., .."]
            );
            assert!(p(&format!("/{kw}/foo")).violations().is_empty());
        }
    }

    #[test]
    fn serde_is_the_string() {
        let id = p("/a/b");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"/a/b\"");
        assert_eq!(serde_json::from_str::<PathId>("\"/a/b\"").unwrap(), id);
        assert_eq!(serde_json::from_str::<PathId>("\"a/b\"").unwrap(), id);
        assert!(serde_json::from_str::<PathId>("\"/A\"").is_err());
        assert_eq!(id.to_string(), "/a/b");
        assert_eq!(PathId::root().to_string(), "/");
    }

    #[test]
    fn raml_pattern_rejects_single_dots() {
        assert!(matches_raml_pattern("/a/b"));
        assert!(matches_raml_pattern("../a"));
        assert!(matches_raml_pattern("a//b/"));
        assert!(!matches_raml_pattern("./a"));
        assert!(!matches_raml_pattern("/A"));
    }
}
