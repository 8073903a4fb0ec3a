//! Marathon placement constraints: `["hostname", "UNIQUE"]`, `["rack", "GROUP_BY", "3"]`, …
//!
//! On the wire a constraint is a 2- or 3-element array `[fieldName, operator, value?]`.
//! `fieldName` is `hostname`, `@hostname`, `@region`, `@zone` or an agent attribute.

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
