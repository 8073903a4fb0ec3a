//! API authentication: argon2 password hashes and HS256 tokens (DC/OS IAM shapes).
//!
//! The signing key is part of the replicated state (chosen once in `InitCluster`), so a token
//! issued by one master is accepted by every master.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// How long a login token is valid (DC/OS's default: 5 days).
pub const TOKEN_LIFETIME_SECS: u64 = 5 * 24 * 3600;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("token is invalid: {0}")]
    BadToken(String),
    #[error("token has expired; log in again with `medos auth login`")]
    Expired,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub uid: String,
    pub exp: u64,
    pub iat: u64,
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a PHC hash; any malformed hash simply fails.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A fresh random signing key, base64.
pub fn new_token_secret() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

fn key_bytes(secret_b64: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(secret_b64).unwrap_or_else(|_| secret_b64.as_bytes().to_vec())
}

/// Issues a token for `uid`, valid from `now_secs` for [`TOKEN_LIFETIME_SECS`].
pub fn issue_token(secret_b64: &str, uid: &str, now_secs: u64) -> String {
    let claims = Claims { uid: uid.to_string(), iat: now_secs, exp: now_secs + TOKEN_LIFETIME_SECS };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&key_bytes(secret_b64)),
    )
    .expect("HS256 signing cannot fail")
}

/// Verifies a token's signature and expiry and returns its claims.
pub fn verify_token(secret_b64: &str, token: &str, now_secs: u64) -> Result<Claims, AuthError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    // Expiry is checked below against the caller's clock, so tests can control time.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(&key_bytes(secret_b64)),
        &validation,
    )
    .map_err(|e| AuthError::BadToken(e.to_string()))?;
    if data.claims.exp <= now_secs {
        return Err(AuthError::Expired);
    }
    Ok(data.claims)
}

/// Extracts the token from `Authorization: token=<jwt>` (DC/OS) or `Bearer <jwt>`.
pub fn token_from_header(value: &str) -> Option<&str> {
    let value = value.trim();
    let token = value
        .strip_prefix("token=")
        .or_else(|| value.strip_prefix("Bearer "))
        .or_else(|| value.strip_prefix("bearer "))?
        .trim();
    (!token.is_empty()).then_some(token)
}

pub use crate::clock::now_secs;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("s3cret", "not-a-hash"));
    }

    #[test]
    fn tokens_check_signature_and_expiry() {
        let secret = new_token_secret();
        let token = issue_token(&secret, "admin", 1000);
        assert_eq!(verify_token(&secret, &token, 1001).unwrap().uid, "admin");
        assert_eq!(verify_token(&secret, &token, 1000 + TOKEN_LIFETIME_SECS), Err(AuthError::Expired));
        assert!(matches!(verify_token(&new_token_secret(), &token, 1001), Err(AuthError::BadToken(_))));
        assert!(matches!(verify_token(&secret, "garbage", 1001), Err(AuthError::BadToken(_))));
    }

    #[test]
    fn authorization_header_forms() {
        let cases = [
            ("token=abc", Some("abc")),
            ("Bearer abc", Some("abc")),
            ("  token=abc  ", Some("abc")),
            ("Basic abc", None),
            ("token=", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(token_from_header(header), expected, "{header:?}");
        }
    }
}
