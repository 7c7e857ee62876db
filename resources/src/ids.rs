//! API ids (`agt_…`, `ses_…`, `cred_…`, `evt_…`, `trn_…`) and their bijection with DNS-1123
//! object names (`agt-…`).
//!
//! An id is a kind prefix, `_`, then 1 to 40 characters of `[a-z0-9]`. The object name is the same
//! string with the `_` replaced by `-`. Because the body never contains `_` or `-`, the mapping is
//! a bijection, so an id can be recovered from a name without a lookup. This module must never
//! accept an id whose name would not be a valid DNS-1123 label.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of random characters in a generated id.
pub const GENERATED_LEN: usize = 24;
/// Maximum number of characters after the prefix.
pub const MAX_BODY_LEN: usize = 40;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// True for the bytes of [`ALPHABET`] (a range check: ids are checked on every request).
fn in_alphabet(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// The kinds of object that carry an API id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    /// `agt_`
    Agent,
    /// `ses_`
    Session,
    /// `cred_`
    Credential,
    /// `evt_`
    Event,
    /// `trn_`
    Turn,
    /// `dst_` (webhook destination)
    Destination,
    /// `dlv_` (webhook delivery)
    Delivery,
    /// `sch_` (schedule)
    Schedule,
    /// `run_` (a schedule's run)
    ScheduleRun,
    /// `dep_` (an agent deployment)
    Deployment,
    /// `act_` (an activation of an agent revision)
    Activation,
}

impl IdKind {
    /// Every kind.
    pub const ALL: [IdKind; 11] = [
        IdKind::Agent,
        IdKind::Session,
        IdKind::Credential,
        IdKind::Event,
        IdKind::Turn,
        IdKind::Destination,
        IdKind::Delivery,
        IdKind::Schedule,
        IdKind::ScheduleRun,
        IdKind::Deployment,
        IdKind::Activation,
    ];

    /// The prefix without its `_`.
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Agent => "agt",
            IdKind::Session => "ses",
            IdKind::Credential => "cred",
            IdKind::Event => "evt",
            IdKind::Turn => "trn",
            IdKind::Destination => "dst",
            IdKind::Delivery => "dlv",
            IdKind::Schedule => "sch",
            IdKind::ScheduleRun => "run",
            IdKind::Deployment => "dep",
            IdKind::Activation => "act",
        }
    }

    fn from_prefix(prefix: &str) -> Option<IdKind> {
        IdKind::ALL.into_iter().find(|k| k.prefix() == prefix)
    }
}

/// A parsed API id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id {
    kind: IdKind,
    body: String,
}

/// Why a string is not an id or object name of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The separator or prefix is missing or unknown.
    #[error("`{0}` does not start with a known id prefix")]
    Prefix(String),
    /// The prefix names another kind.
    #[error("`{value}` is not a {expected} id")]
    WrongKind {
        /// The value given.
        value: String,
        /// The expected prefix.
        expected: &'static str,
    },
    /// The body is empty, too long or has characters outside `[a-z0-9]`.
    #[error("`{0}` must be a prefix followed by 1 to 40 characters of [a-z0-9]")]
    Body(String),
}

impl Id {
    /// A new random id of this kind.
    pub fn generate(kind: IdKind) -> Id {
        let mut rng = rand::rng();
        let body = (0..GENERATED_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        Id { kind, body }
    }

    /// Parses an API id (`ses_abc`) of any kind.
    pub fn parse(value: &str) -> Result<Id, IdError> {
        Self::split(value, '_')
    }

    /// Parses an API id and checks its kind.
    pub fn parse_kind(value: &str, kind: IdKind) -> Result<Id, IdError> {
        let id = Self::parse(value)?;
        if id.kind != kind {
            return Err(IdError::WrongKind {
                value: value.to_owned(),
                expected: kind.prefix(),
            });
        }
        Ok(id)
    }

    /// Recovers an id from its object name (`ses-abc`).
    pub fn from_object_name(name: &str) -> Result<Id, IdError> {
        Self::split(name, '-')
    }

    /// Recovers an id of the given kind from its object name.
    pub fn from_object_name_kind(name: &str, kind: IdKind) -> Result<Id, IdError> {
        let id = Self::from_object_name(name)?;
        if id.kind != kind {
            return Err(IdError::WrongKind {
                value: name.to_owned(),
                expected: kind.prefix(),
            });
        }
        Ok(id)
    }

    fn split(value: &str, separator: char) -> Result<Id, IdError> {
        let (prefix, body) = value
            .split_once(separator)
            .ok_or_else(|| IdError::Prefix(value.to_owned()))?;
        let kind = IdKind::from_prefix(prefix).ok_or_else(|| IdError::Prefix(value.to_owned()))?;
        if body.is_empty() || body.len() > MAX_BODY_LEN || !body.bytes().all(in_alphabet) {
            return Err(IdError::Body(value.to_owned()));
        }
        Ok(Id {
            kind,
            body: body.to_owned(),
        })
    }

    /// The kind.
    pub fn kind(&self) -> IdKind {
        self.kind
    }

    /// The DNS-1123 object name (`ses-abc`).
    pub fn object_name(&self) -> String {
        format!("{}-{}", self.kind.prefix(), self.body)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.kind.prefix(), self.body)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Id::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Converts an API id string to its object name, checking it.
pub fn id_to_object_name(id: &str) -> Result<String, IdError> {
    Id::parse(id).map(|id| id.object_name())
}

/// Converts an object name to its API id string, checking it.
pub fn object_name_to_id(name: &str) -> Result<String, IdError> {
    Id::from_object_name(name).map(|id| id.to_string())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_alphabet_check_accepts_exactly_the_alphabet() {
        let accepted: Vec<u8> = (0..=u8::MAX).filter(|b| in_alphabet(*b)).collect();
        let mut alphabet = ALPHABET.to_vec();
        alphabet.sort_unstable();
        assert_eq!(accepted, alphabet);
    }

    fn is_dns1123_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    fn kind() -> impl Strategy<Value = IdKind> {
        prop::sample::select(IdKind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn id_and_name_are_a_bijection(kind in kind(), body in "[a-z0-9]{1,40}") {
            let id = format!("{}_{}", kind.prefix(), body);
            let name = id_to_object_name(&id).expect("valid id");
            prop_assert!(is_dns1123_label(&name), "{}", name);
            prop_assert_eq!(Id::parse(&id).expect("valid").kind(), kind);
            prop_assert_eq!(object_name_to_id(&name).expect("valid name"), id);
        }

        #[test]
        fn garbage_is_refused_both_ways(value in ".{0,50}") {
            if let Ok(id) = Id::parse(&value) {
                prop_assert_eq!(id.to_string(), value.clone());
                prop_assert!(is_dns1123_label(&id.object_name()));
            }
            if let Ok(id) = Id::from_object_name(&value) {
                prop_assert_eq!(id.object_name(), value);
            }
        }
    }

    #[test]
    fn generated_ids_parse_and_differ() {
        for kind in IdKind::ALL {
            let a = Id::generate(kind);
            let b = Id::generate(kind);
            assert_ne!(a, b);
            assert_eq!(Id::parse_kind(&a.to_string(), kind), Ok(a.clone()));
            assert_eq!(Id::from_object_name_kind(&a.object_name(), kind), Ok(a));
        }
    }

    #[test]
    fn wrong_kinds_and_shapes_are_named() {
        assert!(matches!(
            Id::parse_kind("ses_abc", IdKind::Agent),
            Err(IdError::WrongKind {
                expected: "agt",
                ..
            })
        ));
        for bad in [
            "", "ses", "ses_", "ses_ABC", "ses_a-b", "ses_a_b", "xyz_abc", "ses-abc",
        ] {
            assert!(Id::parse(bad).is_err(), "{bad}");
        }
        assert!(Id::from_object_name("ses_abc").is_err());
        assert!(Id::parse(&format!("ses_{}", "a".repeat(41))).is_err());
    }
}
