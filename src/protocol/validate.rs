//! Validation of client-chosen identifiers: room ids and display names.
//!
//! The reference server accepts any non-empty string; the gateway also caps
//! the length (in characters) and refuses control characters (C0, DEL, C1),
//! which would otherwise end up in logs, file names and dashboards.

/// Why an identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierError {
    NotAString,
    Empty,
    TooLong,
    ControlCharacter,
}

/// A room id: a non-empty string of at most `max_chars` characters, no control characters.
pub fn room_id(value: Option<&serde_json::Value>, max_chars: usize) -> Result<&str, IdentifierError> {
    let s = value.and_then(|v| v.as_str()).ok_or(IdentifierError::NotAString)?;
    if s.is_empty() {
        return Err(IdentifierError::Empty);
    }
    check_text(s, max_chars)?;
    Ok(s)
}

/// A display name: missing or `null` reads as the empty name (the reference
/// server accepts that); otherwise a string of at most `max_chars` characters
/// without control characters.
pub fn display_name(value: Option<&serde_json::Value>, max_chars: usize) -> Result<&str, IdentifierError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(""),
        Some(serde_json::Value::String(s)) => {
            check_text(s, max_chars)?;
            Ok(s)
        }
        Some(_) => Err(IdentifierError::NotAString),
    }
}

/// A room password: like the reference server, anything that is not a string
/// counts as "no password", and surrounding whitespace is trimmed.
pub fn password(value: Option<&serde_json::Value>) -> &str {
    value.and_then(|v| v.as_str()).map(str::trim).unwrap_or("")
}

fn check_text(s: &str, max_chars: usize) -> Result<(), IdentifierError> {
    // Cheap byte-length precheck before counting characters.
    if s.len() > max_chars * 4 || s.chars().count() > max_chars {
        return Err(IdentifierError::TooLong);
    }
    if s.chars().any(char::is_control) {
        return Err(IdentifierError::ControlCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn room_ids() {
        assert_eq!(room_id(Some(&json!("abc")), 8), Ok("abc"));
        assert_eq!(room_id(Some(&json!("é😀")), 2), Ok("é😀"));
        assert_eq!(room_id(Some(&json!("")), 8), Err(IdentifierError::Empty));
        assert_eq!(room_id(Some(&json!(5)), 8), Err(IdentifierError::NotAString));
        assert_eq!(room_id(None, 8), Err(IdentifierError::NotAString));
        assert_eq!(room_id(Some(&json!(["a"])), 8), Err(IdentifierError::NotAString));
        assert_eq!(room_id(Some(&json!("123456789")), 8), Err(IdentifierError::TooLong));
        assert_eq!(room_id(Some(&json!("a\u{0}b")), 8), Err(IdentifierError::ControlCharacter));
        assert_eq!(room_id(Some(&json!("a\nb")), 8), Err(IdentifierError::ControlCharacter));
        assert_eq!(room_id(Some(&json!("a\u{85}b")), 8), Err(IdentifierError::ControlCharacter));
        // Path-like ids are fine for signaling; file-system safety is the recorder's job.
        assert_eq!(room_id(Some(&json!("../x")), 8), Ok("../x"));
    }

    #[test]
    fn names() {
        assert_eq!(display_name(None, 4), Ok(""));
        assert_eq!(display_name(Some(&json!(null)), 4), Ok(""));
        assert_eq!(display_name(Some(&json!("bob")), 4), Ok("bob"));
        assert_eq!(display_name(Some(&json!(1)), 4), Err(IdentifierError::NotAString));
        assert_eq!(display_name(Some(&json!("bobby")), 4), Err(IdentifierError::TooLong));
        assert_eq!(display_name(Some(&json!("b\tb")), 4), Err(IdentifierError::ControlCharacter));
    }

    #[test]
    fn passwords() {
        assert_eq!(password(None), "");
        assert_eq!(password(Some(&json!(42))), "");
        assert_eq!(password(Some(&json!("  s3cret "))), "s3cret");
    }
}
