//! Query-string flags with Marathon's lenient booleans (`?stale`, `?force=False`).

use std::collections::HashMap;

use super::error::ApiError;

pub type Params = HashMap<String, String>;

/// `?name`, `?name=true|1` → true; absent, `?name=false|0` → false (any case).
pub fn flag(params: &Params, name: &str) -> Result<bool, ApiError> {
    match params.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v.is_empty() || v == "true" || v == "1" => Ok(true),
        Some(v) if v == "false" || v == "0" => Ok(false),
        Some(v) => Err(ApiError::BadRequest(format!("query parameter {name}={v:?}: expected true or false"))),
    }
}

/// An optional unsigned integer parameter.
pub fn number(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("query parameter {name}={v:?}: expected a non-negative integer"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_lenient_about_case_and_presence() {
        let p: Params = [("a", ""), ("b", "False"), ("c", "TRUE"), ("d", "maybe"), ("n", "12"), ("m", "-1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(flag(&p, "a").unwrap());
        assert!(!flag(&p, "b").unwrap());
        assert!(flag(&p, "c").unwrap());
        assert!(!flag(&p, "absent").unwrap());
        assert!(flag(&p, "d").unwrap_err().to_string().contains("d=\"maybe\""));
        assert_eq!(number(&p, "n").unwrap(), Some(12));
        assert!(number(&p, "m").is_err());
    }
}
