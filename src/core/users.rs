//! Users of the API. Passwords arrive already hashed (argon2, PHC string) so that applying a
//! command never draws randomness.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: String,
    /// argon2id PHC string, e.g. `$argon2id$v=19$m=19456,t=2,p=1$...`.
    pub password_hash: String,
    #[serde(default)]
    pub description: String,
}

/// Longest user id accepted.
pub const MAX_UID_BYTES: usize = 96;

/// A uid is 1-96 characters of lower-case letters, digits, `-`, `_`, `.` and `@`
/// (DC/OS's rule, plus `@` for e-mail style ids).
pub fn validate_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty() || uid.len() > MAX_UID_BYTES {
        return Err(format!("uid must be 1 to {MAX_UID_BYTES} characters long"));
    }
    if let Some(bad) = uid.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.@".contains(*c))) {
        return Err(format!("uid {uid:?} contains {bad:?}; use lower-case letters, digits, '-', '_', '.', '@'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_rules() {
        for ok in ["admin", "ops-1", "a.b@c"] {
            assert_eq!(validate_uid(ok), Ok(()), "{ok}");
        }
        for bad in ["", "Admin", "a b", "x/y"] {
            assert!(validate_uid(bad).is_err(), "{bad}");
        }
        assert!(validate_uid(&"a".repeat(97)).is_err());
    }
}
