//! URLs made fit for logs, webhooks and the API: the one place that knows
//! which parts of a URL are secrets. A leaf.

/// RTMP URLs end in a secret stream key: keep only its first characters
/// (enough to tell two keys apart in a log), drop any query and password.
pub fn stream_key(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else { return "<not a URL>".to_string() };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.set_query(None);
    url.set_fragment(None);
    let text = url.to_string();
    let segments = url.path_segments().map(|s| s.filter(|s| !s.is_empty()).count()).unwrap_or(0);
    match text.rsplit_once('/') {
        // rtmp://host/app/key: the key is the last of two or more segments.
        Some((base, key)) if segments >= 2 => format!("{base}/{}***", key.chars().take(4).collect::<String>()),
        _ => text,
    }
}

/// A URL without its user info, query and fragment (any of them may carry
/// credentials): `scheme://host[:port]/path`.
pub fn credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{}{}", u.scheme(), u.host_str().unwrap_or(""), port, u.path())
        }
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_keep_four_characters() {
        assert_eq!(stream_key("rtmp://a.example/live/abcdef123"), "rtmp://a.example/live/abcd***");
        assert_eq!(stream_key("rtmp://a.example/live/ab"), "rtmp://a.example/live/ab***");
        assert_eq!(stream_key("rtmps://u:pw@a.example/app/key?token=x"), "rtmps://u:***@a.example/app/key***");
        assert_eq!(stream_key("rtmp://a.example/live"), "rtmp://a.example/live");
        assert_eq!(stream_key("not a url"), "<not a URL>");
    }

    #[test]
    fn credentials_drop_user_info_and_query() {
        assert_eq!(credentials("https://user:pw@h.example:8443/p/q?token=x"), "https://h.example:8443/p/q");
        assert_eq!(credentials("nope"), "<invalid url>");
    }
}
