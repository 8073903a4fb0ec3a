//! Join tokens: how a new agent obtains its certificate without a pre-issued one (as k3s
//! does).
//!
//! A token reads `MJ1<ca-sha256>::<id>:<secret>`:
//! - `<ca-sha256>` is the SHA-256 of the cluster CA certificate (64 hex digits), so the new
//!   agent can pin the CA it downloads from a master before it sends anything secret;
//! - `<id>` is `<kind>.<expires>.<nonce>`: `agent` or `public`, the expiry in Unix seconds
//!   and 8 random bytes in hex;
//! - `<secret>` is an HMAC-SHA256 (base64url) over the fingerprint and the id, keyed with a
//!   key derived from the cluster's replicated token-signing secret.
//!
//! Tokens are stateless: any master verifies any token with the state it already has, and no
//! Raft command is needed to create one. A token may be used by many agents until it expires;
//! it cannot be revoked one by one (see the README).
//!
//! Everything here is pure (time and randomness come from the caller), so it is unit-tested
//! without a cluster.

use base64::Engine as _;
use ring::hmac;

/// The token's version prefix.
pub const PREFIX: &str = "MJ1";
/// Default lifetime of a token (what `medos node join-token create` uses without `--ttl`).
pub const DEFAULT_TTL_SECS: u64 = 24 * 3600;
/// Shortest and longest lifetimes a token may be created with.
pub const MIN_TTL_SECS: u64 = 60;
pub const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    #[error(
        "join token is malformed: {0}; a token looks like MJ1<64 hex digits>::<kind>.<expiry>.<nonce>:<secret> \
         (create one with `medos node join-token create`)"
    )]
    Malformed(String),
    #[error(
        "the join token was created for the cluster CA with fingerprint {token}, but this cluster's CA has \
         fingerprint {ours}; create a token on this cluster with `medos node join-token create`"
    )]
    OtherCa { token: String, ours: String },
    #[error("the join token's secret does not match: it was not created by this cluster, or it was altered")]
    Forged,
    #[error("the join token {id} expired {ago} ago; create a new one with `medos node join-token create`")]
    Expired { id: String, ago: String },
}

/// What a token lets its holder become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinKind {
    /// A private agent.
    Agent,
    /// A public agent (Mesos role `slave_public`).
    Public,
}

impl JoinKind {
    fn as_str(self) -> &'static str {
        match self {
            JoinKind::Agent => "agent",
            JoinKind::Public => "public",
        }
    }
}

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the CA certificate (DER), lower-case hex without separators.
    pub ca_sha256: String,
    pub kind: JoinKind,
    /// Unix seconds after which the token is refused.
    pub expires_at: u64,
    /// Random hex; makes every token unique and names it in logs.
    pub nonce: String,
    secret: Vec<u8>,
}

/// Never print the secret by accident.
impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken").field("ca_sha256", &self.ca_sha256).field("id", &self.id()).finish()
    }
}

/// A CA fingerprint in the token's form (64 lower-case hex digits) from any form a user or
/// [`super::fingerprint`] writes (colons, upper case).
pub fn fingerprint_hex(fingerprint: &str) -> String {
    fingerprint.chars().filter(|c| c.is_ascii_hexdigit()).collect::<String>().to_lowercase()
}

/// The HMAC key for join tokens, derived from the cluster's token-signing secret (base64, as
/// stored in the replicated state) so the same bytes never key two different MACs.
fn join_key(cluster_secret_b64: &str) -> hmac::Key {
    let secret = base64::engine::general_purpose::STANDARD
        .decode(cluster_secret_b64)
        .unwrap_or_else(|_| cluster_secret_b64.as_bytes().to_vec());
    let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), b"medos join tokens v1");
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

fn message(ca_sha256: &str, id: &str) -> Vec<u8> {
    format!("{PREFIX}\n{ca_sha256}\n{id}").into_bytes()
}

/// Human-readable length of `secs`, to the two largest units ("3h 5m", "24h" is "1d", "42s").
pub fn human_duration(secs: u64) -> String {
    let units = [(secs / 86_400, "d"), (secs / 3600 % 24, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(units.len() - 1);
    let parts: Vec<String> =
        units[first..].iter().take(2).filter(|(n, _)| *n > 0 || secs == 0).map(|(n, u)| format!("{n}{u}")).collect();
    parts.join(" ")
}

impl JoinToken {
    /// Creates a token. `ca_fingerprint` in any form; `nonce` should be random.
    pub fn create(
        cluster_secret_b64: &str,
        ca_fingerprint: &str,
        kind: JoinKind,
        expires_at: u64,
        nonce: [u8; 8],
    ) -> Self {
        let ca_sha256 = fingerprint_hex(ca_fingerprint);
        let mut token = Self { ca_sha256, kind, expires_at, nonce: hex::encode(nonce), secret: Vec::new() };
        let tag = hmac::sign(&join_key(cluster_secret_b64), &message(&token.ca_sha256, &token.id()));
        token.secret = tag.as_ref().to_vec();
        token
    }

    /// `<kind>.<expires>.<nonce>`: names the token in logs without revealing its secret.
    pub fn id(&self) -> String {
        format!("{}.{}.{}", self.kind.as_str(), self.expires_at, self.nonce)
    }

    /// Parses a token's text (surrounding white space is ignored). Checks only the shape.
    pub fn parse(text: &str) -> Result<Self, JoinTokenError> {
        let bad = |m: &str| JoinTokenError::Malformed(m.to_string());
        let text = text.trim();
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| bad(&format!("it does not start with {PREFIX}")))?;
        let (ca, rest) = rest.split_once("::").ok_or_else(|| bad("the CA fingerprint is not followed by \"::\""))?;
        if ca.len() != 64 || !ca.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            return Err(bad("the CA fingerprint is not 64 lower-case hex digits"));
        }
        let (id, secret) = rest.rsplit_once(':').ok_or_else(|| bad("the id is not followed by \":<secret>\""))?;
        let mut parts = id.split('.');
        let (Some(kind), Some(expires), Some(nonce), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("the id is not <kind>.<expiry>.<nonce>"));
        };
        let kind = match kind {
            "agent" => JoinKind::Agent,
            "public" => JoinKind::Public,
            other => return Err(bad(&format!("unknown kind {other:?} (expected agent or public)"))),
        };
        let expires_at = expires.parse::<u64>().map_err(|_| bad("the expiry is not a number of seconds"))?;
        if nonce.len() != 16 || !nonce.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
            return Err(bad("the nonce is not 16 lower-case hex digits"));
        }
        let secret = B64.decode(secret).map_err(|_| bad("the secret is not base64url"))?;
        if secret.len() != 32 {
            return Err(bad("the secret is not 32 bytes long"));
        }
        Ok(Self { ca_sha256: ca.to_string(), kind, expires_at, nonce: nonce.to_string(), secret })
    }

    /// Whether the token names the CA with fingerprint `ca_fingerprint` (any form).
    pub fn pins(&self, ca_fingerprint: &str) -> bool {
        self.ca_sha256 == fingerprint_hex(ca_fingerprint)
    }

    /// Verifies the token on a master: it names this cluster's CA, its secret is this
    /// cluster's MAC (compared in constant time), and it has not expired at `now_secs`.
    pub fn verify(&self, cluster_secret_b64: &str, ca_fingerprint: &str, now_secs: u64) -> Result<(), JoinTokenError> {
        if !self.pins(ca_fingerprint) {
            return Err(JoinTokenError::OtherCa {
                token: self.ca_sha256.clone(),
                ours: fingerprint_hex(ca_fingerprint),
            });
        }
        hmac::verify(&join_key(cluster_secret_b64), &message(&self.ca_sha256, &self.id()), &self.secret)
            .map_err(|_| JoinTokenError::Forged)?;
        if self.expires_at <= now_secs {
            return Err(JoinTokenError::Expired { id: self.id(), ago: human_duration(now_secs - self.expires_at) });
        }
        Ok(())
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}::{}:{}", self.ca_sha256, self.id(), B64.encode(&self.secret))
    }
}

/// Parses a lifetime such as `24h`, `30m`, `7d`, `90s` or `3600` (seconds), within
/// [`MIN_TTL_SECS`]..=[`MAX_TTL_SECS`].
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || format!("{text:?} is not a duration like 30m, 24h or 7d");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = number.checked_mul(factor).ok_or_else(bad)?;
    check_ttl(secs)?;
    Ok(secs)
}

/// Checks a lifetime in seconds against the allowed range.
pub fn check_ttl(secs: u64) -> Result<(), String> {
    if !(MIN_TTL_SECS..=MAX_TTL_SECS).contains(&secs) {
        return Err(format!(
            "{} is outside the allowed range {} to {}",
            human_duration(secs),
            human_duration(MIN_TTL_SECS),
            human_duration(MAX_TTL_SECS)
        ));
    }
    Ok(())
}

/// Checks a node name for a certificate's CN: 1-253 characters of A-Z, a-z, 0-9, '-', '.'
/// and '_'.
pub fn validate_node_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 253
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(format!("{name:?} must be 1-253 characters of A-Z, a-z, 0-9, '-', '.' and '_'"));
    }
    Ok(())
}

/// Checks a subject alternative name: an IP address or a DNS name (letters, digits, '-', '.').
pub fn validate_host(host: &str) -> Result<(), String> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("{host:?} is neither an IP address nor a DNS name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==";
    const FP: &str = "AB:CD:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd";

    fn token(kind: JoinKind, expires_at: u64) -> JoinToken {
        JoinToken::create(SECRET, FP, kind, expires_at, [1, 2, 3, 4, 5, 6, 7, 8])
    }

    #[test]
    fn a_token_round_trips_through_its_text_and_verifies() {
        let t = token(JoinKind::Public, 2000);
        let text = t.to_string();
        assert!(text.starts_with("MJ1abcd0011"), "{text}");
        assert!(text.contains("::public.2000.0102030405060708:"), "{text}");
        let parsed = JoinToken::parse(&format!("  {text}\n")).unwrap();
        assert_eq!(parsed, t);
        assert_eq!(parsed.kind, JoinKind::Public);
        parsed.verify(SECRET, FP, 1999).unwrap();
        assert!(parsed.pins("abcd00112233445566778899aabbccddeeff00112233445566778899aabbccdd"));
        assert!(!format!("{parsed:?}").contains(&text[text.rfind(':').unwrap() + 1..]), "Debug hides the secret");
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let t = token(JoinKind::Agent, 2000);
        assert_eq!(t.verify(SECRET, FP, 2000 + 3700), Err(JoinTokenError::Expired { id: t.id(), ago: "1h 1m".into() }));
        // Another cluster's secret.
        let other = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(t.verify(&other, FP, 1000), Err(JoinTokenError::Forged));
        // Another CA.
        let err = t.verify(SECRET, &"00".repeat(32), 1000).unwrap_err();
        assert!(matches!(err, JoinTokenError::OtherCa { .. }), "{err}");
        assert!(err.to_string().contains("abcd0011"), "{err}");
        // Changing the signed fields breaks the MAC: a longer life, another kind.
        let text = t.to_string();
        for forged in [text.replace(".2000.", ".9999."), text.replace("::agent.", "::public.")] {
            assert_eq!(JoinToken::parse(&forged).unwrap().verify(SECRET, FP, 1000), Err(JoinTokenError::Forged));
        }
        // An expired token with a forged secret is reported as forged (its expiry is not trusted).
        let forged_old = text.replace(".2000.", ".1000.");
        assert_eq!(JoinToken::parse(&forged_old).unwrap().verify(SECRET, FP, 5000), Err(JoinTokenError::Forged));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let good = token(JoinKind::Agent, 2000).to_string();
        let cases = [
            (String::new(), "does not start with MJ1"),
            ("K10abc::server:pw".into(), "does not start with MJ1"),
            (good.replace("::", ":"), "not followed by \"::\""),
            (good.replacen("abcd", "ABCD", 1), "64 lower-case hex"),
            (good.replacen("abcd", "ab", 1), "64 lower-case hex"),
            (good[..good.rfind(':').unwrap()].to_string(), "not followed by \":<secret>\""),
            (good.replace("::agent.2000.", "::agent.2000.x."), "the id is not <kind>"),
            (good.replace("::agent.", "::master."), "unknown kind"),
            (good.replace(".2000.", ".soon."), "expiry"),
            (good.replace(".0102030405060708:", ".01:"), "nonce"),
            (format!("{good}!"), "base64url"),
            (format!("{good}AAAA"), "32 bytes"),
        ];
        for (text, needle) in cases {
            let err = JoinToken::parse(&text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        let cases =
            [(0, "0s"), (42, "42s"), (120, "2m"), (3700, "1h 1m"), (7200, "2h"), (86_400, "1d"), (90_061, "1d 1h")];
        for (secs, text) in cases {
            assert_eq!(human_duration(secs), text);
        }
    }

    #[test]
    fn lifetimes_parse_within_bounds() {
        assert_eq!(parse_ttl("24h"), Ok(86_400));
        assert_eq!(parse_ttl("30m"), Ok(1800));
        assert_eq!(parse_ttl("7d"), Ok(604_800));
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("90s"), Ok(90));
        assert!(parse_ttl("10s").unwrap_err().contains("outside"));
        assert!(parse_ttl("400d").unwrap_err().contains("outside"));
        assert!(parse_ttl("1w").unwrap_err().contains("not a duration"));
        assert!(parse_ttl("h").unwrap_err().contains("not a duration"));
        assert!(parse_ttl("99999999999999999999d").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn names_and_hosts_are_checked() {
        validate_node_name("agent-1.example_a").unwrap();
        assert!(validate_node_name("").is_err());
        assert!(validate_node_name("a b").is_err());
        validate_host("10.0.0.1").unwrap();
        validate_host("::1").unwrap();
        validate_host("agent-1.example.com").unwrap();
        for bad in ["", "-a", "a..b", "a/b", "a b", "*.example.com"] {
            assert!(validate_host(bad).is_err(), "{bad:?}");
        }
    }
}
