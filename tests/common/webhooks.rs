//! A webhook endpoint for the tests: records every delivery; signatures are
//! checked with the hmac crate directly, not with the gateway's own code.

use serde_json::Value;

/// Webhook deliveries received by [`webhook_receiver`]: (event header, signature header, raw body).
pub type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A webhook endpoint on loopback that records every delivery and answers 200.
pub async fn webhook_receiver() -> (String, Deliveries) {
    let got: Deliveries = Default::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                store.lock().unwrap().push((header("x-rtcio-event"), header("x-rtcio-signature-256"), body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// The deliveries of `event` so far, each checked: signature (computed here
/// independently with the hmac crate) and the body's event name.
pub fn deliveries_of(got: &Deliveries, event: &str) -> Vec<Value> {
    use hmac::{KeyInit, Mac};
    got.lock()
        .unwrap()
        .iter()
        .filter(|(e, _, _)| e == event)
        .map(|(_, signature, body)| {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
            mac.update(body);
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(signature, &expected, "signature of a {event} delivery");
            let value: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(value["event"], event);
            value
        })
        .collect()
}

/// Wait (up to 20 s) until at least one `event` was delivered; returns them all, checked.
pub async fn delivered(got: &Deliveries, event: &str) -> Vec<Value> {
    super::wait::wait_for_value(&format!("a {event} webhook"), std::time::Duration::from_secs(20), || {
        let found = deliveries_of(got, event);
        std::future::ready(if found.is_empty() {
            Err(format!("{} deliveries of other events", got.lock().unwrap().len()))
        } else {
            Ok(found)
        })
    })
    .await
}

pub const WEBHOOK_SECRET: &str = "webhook-secret-for-tests";
