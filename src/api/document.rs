//! The API's documents: the OpenAPI description (checked against the route
//! list here and against the live routes by `tests/api.rs`) and the status
//! page, a client of the API.

/// The status page served at `/`: static HTML whose script polls this API.
pub const STATUS_PAGE: &str = include_str!("status_page.html");

/// The OpenAPI 3.1 document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route: (method, path as in the OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/rooms"),
    ("get", "/api/v1/rooms/{room}"),
    ("post", "/api/v1/rooms/{room}/recording"),
    ("delete", "/api/v1/rooms/{room}/recording"),
    ("post", "/api/v1/rooms/{room}/relay"),
    ("delete", "/api/v1/rooms/{room}/relay"),
    ("get", "/api/v1/sessions"),
    ("post", "/api/v1/remote/recording"),
    ("post", "/api/v1/remote/recording/stop"),
    ("post", "/api/v1/remote/relay"),
    ("post", "/api/v1/remote/relay/stop"),
    ("get", "/api/v1/recordings"),
    ("get", "/api/v1/recordings/{room_dir}/{stem}"),
    ("delete", "/api/v1/recordings/{room_dir}/{stem}"),
    ("get", "/api/v1/recordings/{room_dir}/{stem}/media"),
    ("get", "/api/v1/recordings/{room_dir}/{stem}/vtt"),
    ("get", "/api/v1/timelines/{room_dir}"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().unwrap().get(..3), Some("3.1"));
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys().filter(|k| *k != "parameters") {
                documented.push((method.clone(), path.clone()));
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
