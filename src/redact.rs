//! How URLs are shown in logs, API answers and webhook bodies: never with
//! credentials, queries or full stream keys, which may be secrets.

/// Shown in place of a URL that does not parse.
pub const NOT_A_URL: &str = "<not a URL>";

/// An endpoint URL (e.g. a webhook target): scheme, host, port and path only;
/// user info, query and fragment dropped.
pub fn endpoint(raw: &str) -> String {
    let Some(mut url) = without_query(raw) else { return NOT_A_URL.to_string() };
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// An RTMP URL, which ends in a secret stream key: keep only the key's first
/// characters (enough to tell two keys apart in a log), mask the password,
/// drop query and fragment.
pub fn stream_key(raw: &str) -> String {
    let Some(mut url) = without_query(raw) else { return NOT_A_URL.to_string() };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let text = url.to_string();
    let segments = url.path_segments().map(|s| s.filter(|s| !s.is_empty()).count()).unwrap_or(0);
    match text.rsplit_once('/') {
        // rtmp://host/app/key: the key is the last of two or more segments.
        Some((base, key)) if segments >= 2 => format!("{base}/{}***", key.chars().take(4).collect::<String>()),
        _ => text,
    }
}

fn without_query(raw: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(raw).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_lose_credentials_and_query() {
        assert_eq!(endpoint("https://user:pw@h.example:8443/p/q?token=x#f"), "https://h.example:8443/p/q");
        assert_eq!(endpoint("http://127.0.0.1:9/hook"), "http://127.0.0.1:9/hook");
        assert_eq!(endpoint("https://h.example"), "https://h.example/");
        assert_eq!(endpoint("nope"), NOT_A_URL);
    }

    #[test]
    fn stream_keys_are_cut_and_passwords_masked() {
        assert_eq!(stream_key("rtmp://a.example/live/abcdef123"), "rtmp://a.example/live/abcd***");
        assert_eq!(stream_key("rtmp://a.example/live/ab"), "rtmp://a.example/live/ab***");
        assert_eq!(stream_key("rtmps://u:pw@a.example/app/key?token=x"), "rtmps://u:***@a.example/app/key***");
        assert_eq!(stream_key("rtmp://a.example/live"), "rtmp://a.example/live");
        assert_eq!(stream_key("not a url"), NOT_A_URL);
    }
}
