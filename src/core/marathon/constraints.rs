//! Marathon placement constraints: `["hostname", "UNIQUE"]`, `["rack", "GROUP_BY", "3"]`, …
//!
//! On the wire a constraint is a 2- or 3-element array `[fieldName, operator, value?]`.
//! `fieldName` is `hostname`, `@hostname`, `@region`, `@zone` or an agent attribute.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Marathon's constraint operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operator {
    Unique,
    Cluster,
    GroupBy,
    Like,
    Unlike,
    MaxPer,
    Is,
}

impl Operator {
    pub const ALL: [Operator; 7] =
        [Self::Unique, Self::Cluster, Self::GroupBy, Self::Like, Self::Unlike, Self::MaxPer, Self::Is];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unique => "UNIQUE",
            Self::Cluster => "CLUSTER",
            Self::GroupBy => "GROUP_BY",
            Self::Like => "LIKE",
            Self::Unlike => "UNLIKE",
            Self::MaxPer => "MAX_PER",
            Self::Is => "IS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// One constraint of an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Constraint {
    pub field: String,
    pub operator: Operator,
    pub value: Option<String>,
}

impl Serialize for Constraint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut items = vec![self.field.as_str(), self.operator.as_str()];
        if let Some(v) = &self.value {
            items.push(v);
        }
        items.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        if !(2..=3).contains(&items.len()) {
            return Err(serde::de::Error::custom(format!(
                "a constraint is [fieldName, operator] or [fieldName, operator, value], got {} items",
                items.len()
            )));
        }
        let operator = Operator::parse(&items[1]).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS (got {:?})",
                items[1]
            ))
        })?;
        Ok(Constraint { field: items[0].clone(), operator, value: items.get(2).cloned() })
    }
}

/// Validation messages, word for word Marathon's (`SchedulingValidationMessages`).
pub mod messages {
    /// An app constraint with an empty field name (Marathon's app-level message).
    pub const ILLEGAL_CONSTRAINT: &str = "illegal constraint specification";
    pub const UNIQUE_NO_VALUE: &str = "UNIQUE does not accept a value";
    pub const GROUP_BY_INT: &str = "GROUP BY must define an integer value or else no value at all";
    pub const MAX_PER_INT: &str = "MAX_PER requires an integer value";
    pub const LIKE_REGEX: &str = "LIKE and UNLIKE require a non-empty, regular expression value";
    pub const INVALID_REGEX: &str = "is not a valid regular expression";
    pub const IS_TEXT: &str = "IS only supports Mesos text and float values (see http://mesos.apache.org/documentation/latest/attributes-resources/)";
}

impl Constraint {
    /// Marathon's rules for one app constraint, with Marathon's messages:
    /// the field name is non-empty; UNIQUE takes no value; CLUSTER takes any value or none;
    /// GROUP_BY takes an integer or nothing; MAX_PER needs an integer; LIKE and UNLIKE need a
    /// regular expression (matched against the whole value); IS takes Mesos text or a float
    /// (`[a-zA-Z0-9_/.-]*`, so no value at all is accepted too, as in Marathon).
    ///
    /// Regular expressions are checked with Rust's `regex` syntax, which lacks look-around and
    /// back-references: such Java patterns are refused here although Marathon accepts them.
    /// An empty LIKE/UNLIKE value is refused (Marathon's message asks for a non-empty value;
    /// Marathon itself would accept it and then never match).
    pub fn validate(&self) -> Result<(), String> {
        use messages::*;
        if self.field.is_empty() {
            return Err(ILLEGAL_CONSTRAINT.to_string());
        }
        let value = self.value.as_deref();
        let is_int = |v: &str| v.parse::<i32>().is_ok();
        let fail = |m: &str| Err(m.to_string());
        match self.operator {
            Operator::Unique if value.is_some() => fail(UNIQUE_NO_VALUE),
            Operator::Unique | Operator::Cluster => Ok(()),
            Operator::GroupBy if value.is_some_and(|v| !is_int(v)) => fail(GROUP_BY_INT),
            Operator::GroupBy => Ok(()),
            Operator::MaxPer if value.is_some_and(is_int) => Ok(()),
            Operator::MaxPer => fail(MAX_PER_INT),
            Operator::Like | Operator::Unlike => match value {
                None | Some("") => fail(LIKE_REGEX),
                Some(pattern) if anchored(pattern).is_none() => fail(INVALID_REGEX),
                Some(_) => Ok(()),
            },
            Operator::Is => {
                let text = value.unwrap_or("");
                if text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-')) {
                    Ok(())
                } else {
                    fail(IS_TEXT)
                }
            }
        }
    }

    /// The value, with "no value" and "" alike (as Marathon's protobuf reads them).
    fn value_str(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

/// `pattern` compiled so that it must match the whole value (Java's `String.matches`).
/// The pattern is first checked on its own: wrapping an unbalanced one like `a)|(b` could
/// otherwise yield a valid but unanchored expression.
fn anchored(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(pattern).ok()?;
    regex::Regex::new(&format!("^(?:{pattern})$")).ok()
}

/// What constraints see of an agent: the candidate (the offer's agent) or the agent of one of
/// the app's other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentView<'a> {
    pub agent_id: &'a str,
    pub hostname: &'a str,
    /// Raw attribute values, as the agent declares them (`rack:1.50`, `ports:[2-3,1-1]`, …).
    pub attributes: &'a BTreeMap<String, String>,
    /// The fault domain (`@region`, `@zone`).
    pub region: Option<&'a str>,
    pub zone: Option<&'a str>,
}

impl<'a> AgentView<'a> {
    /// The value a constraint on `field` reads from this agent: the hostname for `hostname` and
    /// `@hostname`, the fault domain for `@region`/`@zone`, otherwise the attribute as Mesos
    /// formats it (see [`attribute_text`]). `None` when the agent lacks it.
    pub fn field(&self, field: &str) -> Option<Cow<'a, str>> {
        match field {
            "hostname" | "@hostname" => Some(Cow::Borrowed(self.hostname)),
            "@region" => self.region.map(Cow::Borrowed),
            "@zone" => self.zone.map(Cow::Borrowed),
            _ => self.attributes.get(field).map(|raw| attribute_text(raw)),
        }
    }
}

/// An attribute value as Marathon compares it: Mesos parses attributes into scalars, ranges,
/// sets or text, and Marathon formats them back: scalars with at most three decimals
/// (half-even; `1.50` → `1.5`, `007` → `7`), ranges sorted by their start (`[1-2,5-6]`), set
/// items sorted (`{a,b}`). Text is unchanged. Scalars are recognised in Marathon's form
/// `[0-9]+(.[0-9]+)?` (no signs or exponents).
pub fn attribute_text(raw: &str) -> Cow<'_, str> {
    let trimmed = raw.trim();
    if let Some(formatted) = format_scalar(trimmed) {
        return Cow::Owned(formatted);
    }
    if let Some(inner) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let mut ranges: Vec<(u64, String)> = Vec::new();
        for part in inner.split(',') {
            let part = part.trim();
            let (begin, end) = part.split_once('-').unwrap_or((part, part));
            let (Ok(b), Ok(e)) = (begin.trim().parse::<u64>(), end.trim().parse::<u64>()) else {
                return Cow::Borrowed(raw);
            };
            ranges.push((b, format!("{b}-{e}")));
        }
        ranges.sort_by_key(|(b, _)| *b);
        let list: Vec<String> = ranges.into_iter().map(|(_, r)| r).collect();
        return Cow::Owned(format!("[{}]", list.join(",")));
    }
    if let Some(inner) = trimmed.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        let mut items: Vec<&str> = inner.split(',').map(str::trim).collect();
        items.sort_unstable();
        return Cow::Owned(format!("{{{}}}", items.join(",")));
    }
    Cow::Borrowed(raw)
}

/// `text` formatted like Java's `DecimalFormat("0.###")` (half-even) if it is a plain decimal
/// number `[0-9]+(.[0-9]+)?`. The rounding works on the decimal digits.
fn format_scalar(text: &str) -> Option<String> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || (text.contains('.') && !digits(frac)) {
        return None;
    }
    let kept: String = frac.chars().chain(std::iter::repeat('0')).take(3).collect();
    let rest = frac.get(3..).unwrap_or("");
    // All digits of the number scaled by 1000, most significant first.
    let mut number: Vec<u8> = int.bytes().chain(kept.bytes()).map(|b| b - b'0').collect();
    let round_up = match rest.as_bytes().first() {
        None => false,
        Some(&first) if first > b'5' => true,
        Some(&first) if first < b'5' => false,
        Some(_) if rest.bytes().skip(1).any(|b| b != b'0') => true,
        Some(_) => number.last().is_some_and(|d| d % 2 == 1),
    };
    if round_up {
        let mut i = number.len();
        loop {
            if i == 0 {
                number.insert(0, 1);
                break;
            }
            i -= 1;
            if number[i] == 9 {
                number[i] = 0;
            } else {
                number[i] += 1;
                break;
            }
        }
    }
    let split = number.len() - 3;
    let to_text = |ds: &[u8]| ds.iter().map(|d| char::from(b'0' + d)).collect::<String>();
    let int_text = to_text(&number[..split]);
    let int_text = int_text.trim_start_matches('0');
    let int_text = if int_text.is_empty() { "0" } else { int_text };
    let frac_text = to_text(&number[split..]);
    let frac_text = frac_text.trim_end_matches('0');
    Some(if frac_text.is_empty() { int_text.to_string() } else { format!("{int_text}.{frac_text}") })
}

/// What the constraints of an app read from its placed instances: for every constrained
/// field, how many instances have each value and the first instance's value. Built once per
/// app and extended with every placement, so checking a candidate never scans the instances.
#[derive(Debug, Clone, Default)]
pub struct Placed {
    fields: BTreeMap<String, FieldValues>,
}

#[derive(Debug, Clone, Default)]
struct FieldValues {
    /// Instances per value (instances whose agent lacks the field form the `None` group).
    counts: BTreeMap<Option<String>, usize>,
    /// The first placed instance's value (CLUSTER without a value follows it).
    first: Option<Option<String>>,
}

impl Placed {
    /// The fields `constraints` read, counted over `placed` (one agent per instance; the
    /// caller leaves out instances of older app versions, as Marathon does).
    pub fn new<'a>(constraints: &[Constraint], placed: impl IntoIterator<Item = AgentView<'a>>) -> Self {
        let fields = constraints.iter().map(|c| (c.field.clone(), FieldValues::default())).collect();
        let mut this = Self { fields };
        if !this.fields.is_empty() {
            for agent in placed {
                this.add(&agent);
            }
        }
        this
    }

    /// Counts one more instance, placed on `agent`.
    pub fn add(&mut self, agent: &AgentView) {
        for (field, values) in &mut self.fields {
            let value = agent.field(field).map(Cow::into_owned);
            values.first.get_or_insert_with(|| value.clone());
            *values.counts.entry(value).or_insert(0) += 1;
        }
    }

    fn values(&self, field: &str) -> Option<&FieldValues> {
        self.fields.get(field)
    }
}

/// Whether an instance of an app may be placed on `candidate` under `constraint`, given what
/// the app's other instances hold ([`Placed`], built with this constraint among its
/// constraints) and the app's target instance count (used by GROUP_BY with a value).
/// Marathon's `Constraints.meetsConstraint`:
///
/// * An agent lacking the field fails every operator except UNLIKE, which passes.
/// * UNIQUE: no placed instance has the candidate's value.
/// * CLUSTER without value: the candidate's value equals the *first* placed instance's (any
///   value when nothing is placed); with a value: the candidate's value is exactly it.
/// * GROUP_BY `n`: Marathon 1.11's balancing: each of `n` groups should get
///   `instances / n` instances, and `instances % n` groups one more; a new group is accepted
///   while fewer than `n` groups are in use. GROUP_BY without a value (or `0`, where
///   Marathon 1.11 would divide by zero) keeps the earlier documented rule: a value not used
///   yet is always accepted, a used one only if its group is (one of) the smallest.
/// * MAX_PER `n`: fewer than `n` placed instances share the candidate's value.
/// * LIKE/UNLIKE: the regular expression matches (does not match) the whole value; an empty
///   or invalid expression fails both.
/// * IS: the value equals the constraint's, comparing scalars in Mesos format (`1.0` IS `1`).
pub fn meets(constraint: &Constraint, candidate: &AgentView, placed: &Placed, target_instances: u32) -> bool {
    let Some(offer_value) = candidate.field(&constraint.field) else {
        return constraint.operator == Operator::Unlike;
    };
    let offer_value = offer_value.as_ref();
    let value = constraint.value_str();
    let empty = FieldValues::default();
    let values = placed.values(&constraint.field).unwrap_or(&empty);
    let count = || values.counts.get(&Some(offer_value.to_string())).copied();
    match constraint.operator {
        Operator::Unique => count().is_none(),
        Operator::Cluster if value.is_empty() => {
            values.first.as_ref().is_none_or(|first| first.as_deref() == Some(offer_value))
        }
        Operator::Cluster => offer_value == value,
        Operator::GroupBy => match value.parse::<i64>() {
            Ok(groups) if groups > 0 => group_by_balanced(&values.counts, count(), groups, target_instances),
            _ => group_by_smallest(&values.counts, count()),
        },
        Operator::MaxPer => match value.parse::<i64>() {
            Ok(max) => count().is_none_or(|n| (n as i64) < max),
            Err(_) => false,
        },
        Operator::Like | Operator::Unlike if value.is_empty() => false,
        Operator::Like | Operator::Unlike => match anchored(value) {
            Some(re) => re.is_match(offer_value) == (constraint.operator == Operator::Like),
            None => false,
        },
        Operator::Is => match format_scalar(value) {
            Some(scalar) => offer_value == scalar,
            None => offer_value == value,
        },
    }
}

/// GROUP_BY with a group count (Marathon 1.11 `checkGroupBy`).
fn group_by_balanced(
    counts: &BTreeMap<Option<String>, usize>,
    offer_count: Option<usize>,
    groups: i64,
    target: u32,
) -> bool {
    // Marathon reads the target from the placed instances' app, and uses 1 when none is placed
    // (then only the "new group" branch below is reached).
    let target = if counts.is_empty() { 1 } else { i64::from(target) };
    let per_group = target / groups;
    let remainder = target % groups;
    let remainder_consumed: i64 = counts.values().map(|&n| (n as i64 - per_group).max(0)).sum();
    match offer_count {
        Some(n) => {
            let n = n as i64;
            n < per_group || (n == per_group && remainder - remainder_consumed > 0)
        }
        None => (counts.len() as i64) < groups,
    }
}

/// GROUP_BY without a group count: new values are welcome, used ones only if smallest.
fn group_by_smallest(counts: &BTreeMap<Option<String>, usize>, offer_count: Option<usize>) -> bool {
    let smallest = counts.values().copied().min().unwrap_or(0);
    offer_count.is_none_or(|n| n == smallest)
}

/// Which instances to kill when scaling an app down by `count` while keeping its GROUP_BY
/// constraints balanced (Marathon's `Constraints.selectInstancesToKill`). `running` lists the
/// agent of every running instance, in the caller's preferred kill order; the answer holds
/// indexes into it, at most `count` of them.
///
/// As in Marathon: when every instance goes, all are returned; without a GROUP_BY constraint
/// nothing is returned (the caller then uses its own order); instances are taken from the
/// largest groups of the most uneven distribution first, and one is only taken if every
/// GROUP_BY distribution stays within one instance (or becomes more even than it was), so
/// fewer than `count` may come back.
pub fn select_to_kill(constraints: &[Constraint], running: &[AgentView], count: usize) -> Vec<usize> {
    let count = count.min(running.len());
    if count == running.len() {
        return (0..count).collect();
    }
    // For every GROUP_BY constraint: each instance's group (groups ordered by value) and the
    // instances of each group.
    struct Distribution {
        group_of: Vec<usize>,
        members: Vec<Vec<usize>>,
        sizes: Vec<usize>,
        initial_difference: usize,
    }
    let spread = |sizes: &[usize]| sizes.iter().max().unwrap_or(&0) - sizes.iter().min().unwrap_or(&0);
    let mut distributions: Vec<Distribution> = constraints
        .iter()
        .filter(|c| c.operator == Operator::GroupBy)
        .map(|c| {
            let values: Vec<Option<Cow<str>>> = running.iter().map(|view| view.field(&c.field)).collect();
            let mut keys: Vec<&Option<Cow<str>>> = values.iter().collect();
            keys.sort();
            keys.dedup();
            let group_of: Vec<usize> = values.iter().map(|v| keys.binary_search(&v).expect("value is a key")).collect();
            let mut members = vec![Vec::new(); keys.len()];
            for (i, g) in group_of.iter().enumerate() {
                members[*g].push(i);
            }
            let sizes: Vec<usize> = members.iter().map(Vec::len).collect();
            let initial_difference = spread(&sizes);
            Distribution { group_of, members, sizes, initial_difference }
        })
        .collect();
    if distributions.is_empty() {
        return vec![];
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut taken = vec![false; running.len()];
    while chosen.len() < count {
        // Distributions, most uneven first (stable for equal differences); from each uneven
        // one the instances of its largest groups; then every instance as a fallback.
        let mut order: Vec<&Distribution> = distributions.iter().collect();
        order.sort_by_key(|d| std::cmp::Reverse(spread(&d.sizes)));
        let mut candidates: Vec<usize> = Vec::new();
        for d in order {
            let largest = d.sizes.iter().copied().max().unwrap_or(0);
            if largest != d.sizes.iter().copied().min().unwrap_or(0) {
                for (members, _) in d.members.iter().zip(&d.sizes).filter(|(_, size)| **size == largest) {
                    candidates.extend(members.iter().filter(|&&i| !taken[i]));
                }
            }
        }
        candidates.extend((0..running.len()).filter(|&i| !taken[i]));
        // Taken only if every distribution stays within one instance or becomes more even
        // than it was before any kill.
        let pick = candidates.into_iter().find(|&candidate| {
            distributions.iter().all(|d| {
                let mut sizes = d.sizes.clone();
                sizes[d.group_of[candidate]] -= 1;
                let after = spread(&sizes);
                after <= 1 || d.initial_difference > after
            })
        });
        let Some(i) = pick else { break };
        taken[i] = true;
        chosen.push(i);
        for d in &mut distributions {
            d.sizes[d.group_of[i]] -= 1;
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counting placements one at a time gives the same answers as counting them all at once,
    /// for every operator, at every step of a placement sequence over racks and hosts.
    #[test]
    fn placed_counted_incrementally_answers_as_counted_at_once() {
        let constraints = [
            c("rack", Operator::Unique, None),
            c("rack", Operator::Cluster, None),
            c("rack", Operator::GroupBy, None),
            c("rack", Operator::GroupBy, Some("3")),
            c("hostname", Operator::MaxPer, Some("2")),
            c("rack", Operator::MaxPer, Some("3")),
            c("rack", Operator::Like, Some("r[12]")),
            c("missing", Operator::Unlike, Some("x")),
        ];
        let agents: Vec<Agent> = (0..12).map(|i| agent(&format!("h{}", i % 5), &format!("rack:r{}", i % 3))).collect();
        let mut incremental = Placed::new(&constraints, []);
        for step in 0..agents.len() {
            let at_once = Placed::new(&constraints, agents[..step].iter().map(Agent::view));
            for candidate in &agents {
                for constraint in &constraints {
                    assert_eq!(
                        meets(constraint, &candidate.view(), &incremental, 9),
                        meets(constraint, &candidate.view(), &at_once, 9),
                        "step {step}, {constraint:?} on {}",
                        candidate.host
                    );
                }
            }
            incremental.add(&agents[step].view());
        }
    }

    fn c(field: &str, operator: Operator, value: Option<&str>) -> Constraint {
        Constraint { field: field.into(), operator, value: value.map(str::to_string) }
    }

    /// An agent described as `host` plus `key:value;…` attributes (Marathon's test notation).
    struct Agent {
        host: String,
        attributes: BTreeMap<String, String>,
        region: Option<String>,
        zone: Option<String>,
    }

    fn agent(host: &str, attributes: &str) -> Agent {
        let attributes = attributes
            .split(';')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once(':').expect("key:value");
                (k.to_string(), v.to_string())
            })
            .collect();
        Agent { host: host.into(), attributes, region: None, zone: None }
    }

    fn domain(host: &str, region: &str, zone: &str) -> Agent {
        Agent { region: Some(region.into()), zone: Some(zone.into()), ..agent(host, "") }
    }

    impl Agent {
        fn view(&self) -> AgentView<'_> {
            AgentView {
                agent_id: &self.host,
                hostname: &self.host,
                attributes: &self.attributes,
                region: self.region.as_deref(),
                zone: self.zone.as_deref(),
            }
        }
    }

    fn check(constraint: &Constraint, candidate: &Agent, placed: &[Agent], instances: u32) -> bool {
        let views: Vec<AgentView> = placed.iter().map(Agent::view).collect();
        meets(constraint, &candidate.view(), &Placed::new(std::slice::from_ref(constraint), views), instances)
    }

    #[test]
    fn validation_rules_and_messages() {
        use Operator::*;
        use messages::*;
        let cases: Vec<(Constraint, Option<&str>)> = vec![
            (c("hostname", Unique, None), None),
            (c("hostname", Unique, Some("a")), Some(UNIQUE_NO_VALUE)),
            (c("hostname", Unique, Some("")), Some(UNIQUE_NO_VALUE)),
            (c("hostname", Cluster, None), None),
            (c("hostname", Cluster, Some("")), None),
            (c("attr", Cluster, Some("foo")), None),
            (c("", Cluster, Some("b")), Some(ILLEGAL_CONSTRAINT)),
            (c("", Unique, None), Some(ILLEGAL_CONSTRAINT)),
            (c("rack-id", GroupBy, None), None),
            (c("rack-id", GroupBy, Some("123")), None),
            (c("rack-id", GroupBy, Some("AbcDZ")), Some(GROUP_BY_INT)),
            (c("rack-id", GroupBy, Some("1.5")), Some(GROUP_BY_INT)),
            (c("rack-id", MaxPer, None), Some(MAX_PER_INT)),
            (c("rack-id", MaxPer, Some("123")), None),
            (c("rack-id", MaxPer, Some("AbcDZ")), Some(MAX_PER_INT)),
            (c("rack-id", MaxPer, Some("")), Some(MAX_PER_INT)),
            (c("attribute", Is, Some("value-1.2/3_4")), None),
            (c("attribute", Is, Some("[0-9]")), Some(IS_TEXT)),
            (c("attribute", Is, Some("a b")), Some(IS_TEXT)),
            (c("attribute", Is, None), None),
            (c("rack-id", Like, None), Some(LIKE_REGEX)),
            (c("rack-id", Like, Some("")), Some(LIKE_REGEX)),
            (c("rack-id", Like, Some(".*")), None),
            (c("rack-id", Like, Some("*")), Some(INVALID_REGEX)),
            (c("rack-id", Like, Some("rack-[1-3")), Some(INVALID_REGEX)),
            (c("rack-id", Unlike, None), Some(LIKE_REGEX)),
            (c("rack-id", Unlike, Some("rack-[7-9]")), None),
            (c("rack-id", Unlike, Some("*")), Some(INVALID_REGEX)),
            // A value that would break out of the anchoring group is still just invalid.
            (c("rack-id", Like, Some("a)|(b")), Some(INVALID_REGEX)),
        ];
        for (constraint, expected) in cases {
            assert_eq!(constraint.validate().err().as_deref(), expected, "{constraint:?}");
        }
    }

    #[test]
    fn attribute_values_are_compared_in_mesos_format() {
        let cases = [
            ("rack-1", "rack-1"),
            ("1", "1"),
            ("1.0", "1"),
            ("1.50", "1.5"),
            ("007", "7"),
            ("0.0001", "0"),
            ("1.0005", "1"),
            ("1.00051", "1.001"),
            ("1.0015", "1.002"),
            ("2.9995", "3"),
            ("9.9999", "10"),
            ("12.345", "12.345"),
            ("1.", "1."),
            (".5", ".5"),
            ("-1", "-1"),
            ("[6-7]", "[6-7]"),
            ("[5-6,1-2]", "[1-2,5-6]"),
            ("[10-20, 3-4]", "[3-4,10-20]"),
            ("{1,0}", "{0,1}"),
            ("{b,a,c}", "{a,b,c}"),
        ];
        for (raw, formatted) in cases {
            assert_eq!(attribute_text(raw), formatted, "{raw}");
        }
    }

    #[test]
    fn unique() {
        let u = c("hostname", Operator::Unique, None);
        let placed = [agent("host1", ""), agent("host2", ""), agent("host3", "")];
        assert!(check(&u, &agent("host2", ""), &[], 3));
        assert!(check(&u, &agent("host4", ""), &placed, 3));
        assert!(!check(&u, &agent("host2", ""), &placed, 3));
        // `@hostname` is the same field.
        assert!(!check(&c("@hostname", Operator::Unique, None), &agent("host2", ""), &placed, 3));
        let rack = c("rackid", Operator::Unique, None);
        let placed = [agent("h", "rackid:rack-1"), agent("h", "rackid:rack-2"), agent("h", "")];
        assert!(check(&rack, &agent("h", "rackid:rack-1"), &[], 1));
        assert!(check(&rack, &agent("h", "rackid:rack-3"), &placed, 1));
        assert!(!check(&rack, &agent("h", "rackid:rack-1"), &placed, 1));
        // An agent lacking the attribute never matches, even with nothing placed.
        assert!(!check(&rack, &agent("h", ""), &[], 1));
        // Fault domains.
        let placed = [domain("a", "region1", "zone1")];
        assert!(!check(&c("@region", Operator::Unique, None), &domain("b", "region1", "zone2"), &placed, 1));
        assert!(check(&c("@region", Operator::Unique, None), &domain("b", "region2", "zone1"), &placed, 1));
        assert!(!check(&c("@zone", Operator::Unique, None), &domain("b", "region2", "zone1"), &placed, 1));
        assert!(check(&c("@zone", Operator::Unique, None), &domain("b", "region1", "zone2"), &placed, 1));
        assert!(!check(&c("@zone", Operator::Unique, None), &agent("b", "zone:zone2"), &[], 1));
    }

    #[test]
    fn cluster() {
        let any_host = c("hostname", Operator::Cluster, None);
        assert!(check(&any_host, &agent("foohost", ""), &[], 1));
        assert!(check(&any_host, &agent("h1", ""), &[agent("h1", ""), agent("h1", "")], 3));
        assert!(!check(&any_host, &agent("h2", ""), &[agent("h1", "")], 3));
        // Only the first placed instance decides (Marathon looks at the head).
        assert!(check(&any_host, &agent("h1", ""), &[agent("h1", ""), agent("h2", "")], 3));
        assert!(!check(&c("hostname", Operator::Cluster, Some("right.com")), &agent("wrong.com", ""), &[], 1));
        assert!(check(&c("hostname", Operator::Cluster, Some("right.com")), &agent("right.com", ""), &[], 1));
        let rack = c("rackid", Operator::Cluster, None);
        let placed = [agent("h", "rackid:rack-1"), agent("h", "rackid:rack-1")];
        assert!(check(&rack, &agent("h", "foo:bar;rackid:rack-1"), &[], 1));
        assert!(check(&rack, &agent("h", "foo:bar;rackid:rack-1"), &placed, 3));
        assert!(!check(&rack, &agent("h", "foo:bar;rackid:rack-2"), &placed, 3));
        assert!(!check(&rack, &agent("h", "foo:bar"), &[], 1));
        // An empty value is no value.
        assert!(check(&c("rackid", Operator::Cluster, Some("")), &agent("h", "rackid:rack-1"), &placed, 3));
        // Values are compared in Mesos format.
        let set = c("gpu", Operator::Cluster, Some("{0,1}"));
        assert!(check(&set, &agent("h", "gpu:{1,0}"), &[], 1));
        assert!(!check(&c("jdk", Operator::Cluster, Some("{0,1}")), &agent("h", "jdk:{2,1}"), &[], 1));
        assert!(check(&c("jdk", Operator::Cluster, Some("[6-7]")), &agent("h", "jdk:[6-7]"), &[], 1));
        assert!(check(&c("jdk", Operator::Cluster, Some("7")), &agent("h", "jdk:7"), &[], 1));
    }

    #[test]
    fn like_and_unlike_match_the_whole_value() {
        use Operator::{Like, Unlike};
        // (constraint, agent attributes, like meets, unlike meets)
        let cases = [
            ("7", "jdk:7", true, false),
            ("7", "jdk:6", false, true),
            ("7", "jdk:17", false, true),
            ("7", "jdk:7.0", true, false),
            ("rack-[1-3]", "jdk:rack-2", true, false),
            ("rack-[1-3]", "jdk:rack-22", false, true),
            ("rack", "jdk:rack-2", false, true),
            (".*", "jdk:anything", true, false),
            ("a|b", "jdk:b", true, false),
            ("a|b", "jdk:ab", false, true),
            ("\\[6-7\\]", "jdk:[6-7]", true, false),
            ("\\[6-7\\]", "jdk:5-7", false, true),
            ("\\{0,1\\}", "jdk:{1,0}", true, false),
            ("\\{0,1\\}", "jdk:{2,1}", false, true),
            // Missing attribute: LIKE fails, UNLIKE passes.
            ("7", "", false, true),
            // Invalid or empty expressions fail both.
            ("*", "jdk:7", false, false),
            ("", "jdk:7", false, false),
        ];
        for (pattern, attrs, like, unlike) in cases {
            let candidate = agent("h", attrs);
            assert_eq!(check(&c("jdk", Like, Some(pattern)), &candidate, &[], 1), like, "{pattern} LIKE {attrs}");
            assert_eq!(check(&c("jdk", Unlike, Some(pattern)), &candidate, &[], 1), unlike, "{pattern} UNLIKE {attrs}");
        }
        assert!(check(&c("hostname", Like, Some("web-.*")), &agent("web-1", ""), &[], 1));
        assert!(!check(&c("@hostname", Like, Some("web-.*")), &agent("db-1", ""), &[], 1));
    }

    #[test]
    fn is_compares_text_and_scalars() {
        let cases = [
            ("hostname", "righthost.com", "righthost.com", "", true),
            ("hostname", "righthost.com", "wronghost.com", "", false),
            ("number", "1.0", "host", "number:1", true),
            ("number", "1", "host", "number:1.0", true),
            ("number", "1.0001", "host", "number:1.0", true),
            ("number", "1.0005", "host", "number:1.0", true),
            ("number", "1.00051", "host", "number:1.0", false),
            ("number", "1.001", "host", "number:1.0", false),
            ("rack", "rack-1", "host", "rack:rack-1", true),
            ("rack", "rack-1", "host", "rack:rack-2", false),
            ("rack", "rack-1", "host", "", false),
        ];
        for (field, value, host, attrs, expected) in cases {
            assert_eq!(
                check(&c(field, Operator::Is, Some(value)), &agent(host, attrs), &[], 1),
                expected,
                "{field} IS {value} on {host} {attrs}"
            );
        }
    }

    #[test]
    fn max_per() {
        let per_host = c("hostname", Operator::MaxPer, Some("2"));
        let h1 = || agent("host1", "");
        assert!(check(&per_host, &h1(), &[], 5));
        assert!(check(&per_host, &h1(), &[h1()], 5));
        assert!(check(&per_host, &agent("host2", ""), &[h1(), h1()], 5));
        assert!(!check(&per_host, &h1(), &[h1(), h1(), agent("host2", "")], 5));
        let per_rack = c("rackid", Operator::MaxPer, Some("2"));
        let rack = |n: u32| agent("h", &format!("foo:bar;rackid:{n}"));
        assert!(check(&per_rack, &rack(1), &[], 5));
        assert!(check(&per_rack, &rack(2), &[rack(1)], 5));
        assert!(check(&per_rack, &rack(1), &[rack(1), rack(2)], 5));
        assert!(!check(&per_rack, &rack(1), &[rack(1), rack(2), rack(1)], 5));
        assert!(!check(&per_rack, &agent("h", "foo:bar"), &[], 5));
        // Scalars are grouped in Mesos format: 1 and 1.0 are one group.
        assert!(!check(&per_rack, &agent("h", "rackid:1.0"), &[rack(1), agent("h", "rackid:01")], 5));
        // MAX_PER 0 still allows the first instance of a value (Marathon).
        assert!(check(&c("hostname", Operator::MaxPer, Some("0")), &h1(), &[], 5));
        assert!(!check(&c("hostname", Operator::MaxPer, Some("0")), &h1(), &[h1()], 5));
        assert!(!check(&c("hostname", Operator::MaxPer, Some("x")), &h1(), &[], 5));
    }

    #[test]
    fn group_by_with_a_count_balances_across_groups() {
        // Five instances over two racks: 3 + 2, over four racks: 2 + 1 + 1 + 1.
        let rack = |n: u32| agent("h", &format!("foo:bar;rackid:rack-{n}"));
        let two = c("rackid", Operator::GroupBy, Some("2"));
        let four = c("rackid", Operator::GroupBy, Some("4"));
        // (constraint, offer's rack, placed racks, meets)
        let cases: Vec<(&Constraint, u32, Vec<u32>, bool)> = vec![
            (&two, 1, vec![], true),
            (&two, 1, vec![1, 1], true),
            (&four, 1, vec![1], true),
            (&two, 1, vec![1, 1, 1], false),
            (&four, 1, vec![1, 1], false),
            (&two, 2, vec![1], true),
            (&four, 2, vec![1, 1, 2], false),
            (&two, 2, vec![1, 1, 1, 2], true),
            (&two, 3, vec![1, 2], false),
            // Skew allowed up to the per-group share: rack 1 may take 3 before rack 2 has any.
            (&two, 1, vec![1, 1], true),
            (&two, 2, vec![1, 1, 1], true),
            (&two, 1, vec![1, 2, 2], true),
            (&two, 2, vec![1, 2, 2], true),
            (&two, 2, vec![1, 2, 2, 2], false),
        ];
        for (i, (constraint, offered, placed, expected)) in cases.into_iter().enumerate() {
            let placed: Vec<Agent> = placed.into_iter().map(rack).collect();
            assert_eq!(check(constraint, &rack(offered), &placed, 5), expected, "case {i}");
        }
        assert!(!check(&two, &agent("h", "foo:bar"), &[], 5));
        // The same with hostnames, and scalar attribute values in Mesos format.
        let three_hosts = c("hostname", Operator::GroupBy, Some("3"));
        let host = |n: u32| agent(&format!("host-{n}"), "");
        assert!(check(&three_hosts, &host(1), &[], 5));
        assert!(check(&three_hosts, &host(2), &[host(1)], 5));
        assert!(check(&three_hosts, &host(3), &[host(1), host(2)], 5));
        assert!(check(&three_hosts, &host(1), &[host(1)], 5));
        assert!(!check(&three_hosts, &host(4), &[host(1), host(2), host(3)], 5));
        let scalar = c("rackid", Operator::GroupBy, Some("3"));
        let s = |v: &str| agent("h", &format!("rackid:{v}"));
        assert!(check(&scalar, &s("1"), &[s("1.0")], 5));
        assert!(check(&scalar, &s("2"), &[s("1.0")], 5));
    }

    #[test]
    fn group_by_without_a_count_keeps_groups_even() {
        let g = c("rackid", Operator::GroupBy, None);
        let rack = |n: u32| agent("h", &format!("rackid:rack-{n}"));
        // (offer's rack, placed racks, meets)
        let cases: Vec<(u32, Vec<u32>, bool)> = vec![
            (1, vec![], true),
            (1, vec![1], true),
            (2, vec![1], true),
            (1, vec![1, 2], true),
            (1, vec![1, 1, 2], false),
            (2, vec![1, 1, 2], true),
            // A value not seen yet is always welcome, however uneven that is.
            (3, vec![1, 1, 1, 2, 2, 2], true),
            (1, vec![1, 1, 2, 2, 3], false),
            (3, vec![1, 1, 2, 2, 3], true),
        ];
        for (i, (offered, placed, expected)) in cases.into_iter().enumerate() {
            let placed: Vec<Agent> = placed.into_iter().map(rack).collect();
            assert_eq!(check(&g, &rack(offered), &placed, 9), expected, "case {i}");
        }
        // "0" behaves like no count.
        let zero = c("rackid", Operator::GroupBy, Some("0"));
        assert!(!check(&zero, &rack(1), &[rack(1), rack(1), rack(2)], 9));
        assert!(check(&zero, &rack(2), &[rack(1), rack(1), rack(2)], 9));
        assert!(!check(&g, &agent("h", ""), &[], 9));
    }

    fn kill(constraints: &[Constraint], running: &[Agent], count: usize) -> Vec<usize> {
        let views: Vec<AgentView> = running.iter().map(Agent::view).collect();
        select_to_kill(constraints, &views, count)
    }

    #[test]
    fn select_to_kill_keeps_group_by_balanced() {
        let by_host = [c("hostname", Operator::GroupBy, None)];
        // 20 instances evenly on two hosts: kill 10, five from each.
        let even: Vec<Agent> = (0..20).map(|n| agent(&format!("{}", n % 2), "")).collect();
        let chosen = kill(&by_host, &even, 10);
        assert_eq!(chosen.len(), 10);
        assert_eq!(chosen.iter().filter(|&&i| even[i].host == "0").count(), 5);
        // 20 on host 1 and 10 on host 2: kill 10, all from host 1.
        let uneven: Vec<Agent> = (0..30).map(|n| agent(if n < 20 { "1" } else { "2" }, "")).collect();
        let chosen = kill(&by_host, &uneven, 10);
        assert_eq!(chosen.len(), 10);
        assert!(chosen.iter().all(|&i| uneven[i].host == "1"), "{chosen:?}");
        // Two distributions at once: racks and colours stay balanced.
        let both = [c("rack", Operator::GroupBy, None), c("color", Operator::GroupBy, None)];
        let grid: Vec<Agent> =
            ["rack:rack-1;color:blue", "rack:rack-1;color:green", "rack:rack-2;color:blue", "rack:rack-2;color:green"]
                .iter()
                .flat_map(|attrs| (0..10).map(move |_| agent("h", attrs)))
                .collect();
        let chosen = kill(&both, &grid, 20);
        assert_eq!(chosen.len(), 20);
        for value in ["rack-1", "rack-2", "blue", "green"] {
            let n = chosen.iter().filter(|&&i| grid[i].attributes.values().any(|v| v == value)).count();
            assert_eq!(n, 10, "{value}");
        }
    }

    #[test]
    fn select_to_kill_edge_cases() {
        let by_host = [c("hostname", Operator::GroupBy, None)];
        let running: Vec<Agent> = ["a", "a", "b"].iter().map(|h| agent(h, "")).collect();
        // Without GROUP_BY nothing is chosen (the caller decides).
        assert_eq!(kill(&[c("hostname", Operator::Unique, None)], &running, 1), Vec::<usize>::new());
        // Killing all (or more) returns all.
        assert_eq!(kill(&[], &running, 3), vec![0, 1, 2]);
        assert_eq!(kill(&by_host, &running, 5), vec![0, 1, 2]);
        assert_eq!(kill(&by_host, &running, 0), Vec::<usize>::new());
        // The larger group goes first, in the caller's order.
        assert_eq!(kill(&by_host, &running, 1), vec![0]);
        assert_eq!(kill(&by_host, &running, 2), vec![0, 1]);
        // Instances lacking the attribute form a group of their own.
        let racks: Vec<Agent> = ["rack:1", "", "", "", "rack:2"].iter().map(|a| agent("h", a)).collect();
        assert_eq!(kill(&[c("rack", Operator::GroupBy, None)], &racks, 2), vec![1, 2]);
    }
}
