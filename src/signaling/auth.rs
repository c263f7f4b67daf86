//! Optional JWT authentication of socket.io handshakes: an HS256 token in the
//! handshake's `auth.token`, checked against the configured secret (and
//! issuer/audience when configured). Pure functions; the connect middleware
//! in [`super`] maps errors to socket.io's `connect_error`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::AuthConfig;

/// Why a handshake was refused. The `Display` text is what the client sees in
/// `connect_error` (`err.message`), so it says what to fix, never the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("unauthorized: missing auth.token (this server requires a JWT in the socket.io handshake auth)")]
    MissingToken,
    #[error("unauthorized: auth.token has expired")]
    Expired,
    #[error("unauthorized: auth.token is not valid ({0})")]
    Invalid(String),
}

/// A ready-to-use verifier, or `None` when authentication is disabled.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// A token for the gateway's own participant, signed with the configured
/// secret (None when authentication is off).
pub fn internal_token(cfg: &AuthConfig) -> Option<String> {
    if cfg.jwt_secret.is_empty() {
        return None;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut claims =
        serde_json::json!({"sub": "rtcio-gateway-recorder", "iat": now, "exp": now + 10 * 365 * 24 * 3600});
    if !cfg.jwt_issuer.is_empty() {
        claims["iss"] = cfg.jwt_issuer.clone().into();
    }
    if !cfg.jwt_audience.is_empty() {
        claims["aud"] = cfg.jwt_audience.clone().into();
    }
    let key = jsonwebtoken::EncodingKey::from_secret(cfg.jwt_secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), &claims, &key).ok()
}

impl JwtVerifier {
    pub fn from_config(cfg: &AuthConfig) -> Option<Self> {
        if cfg.jwt_secret.is_empty() {
            return None;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = true;
        validation.leeway = 30;
        if !cfg.jwt_issuer.is_empty() {
            validation.set_issuer(&[cfg.jwt_issuer.as_str()]);
            validation.required_spec_claims.insert("iss".into());
        }
        if !cfg.jwt_audience.is_empty() {
            validation.set_audience(&[cfg.jwt_audience.as_str()]);
            validation.required_spec_claims.insert("aud".into());
        } else {
            validation.validate_aud = false;
        }
        Some(Self { key: DecodingKey::from_secret(cfg.jwt_secret.as_bytes()), validation })
    }

    /// Check the handshake `auth` payload (`{token: "<jwt>"}`).
    pub fn verify(&self, auth: &serde_json::Value) -> Result<(), AuthError> {
        let token =
            auth.get("token").and_then(|t| t.as_str()).filter(|t| !t.is_empty()).ok_or(AuthError::MissingToken)?;
        jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation).map(|_| ()).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123";

    fn cfg(iss: &str, aud: &str) -> AuthConfig {
        AuthConfig { jwt_secret: SECRET.into(), jwt_issuer: iss.into(), jwt_audience: aud.into() }
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn disabled_without_secret() {
        assert!(JwtVerifier::from_config(&AuthConfig::default()).is_none());
    }

    #[test]
    fn accepts_valid_and_refuses_the_rest() {
        let v = JwtVerifier::from_config(&cfg("", "")).unwrap();
        assert_eq!(v.verify(&json!({"token": token(json!({"sub": "u"}), SECRET)})), Ok(()));
        assert_eq!(v.verify(&json!({"token": token(json!({"exp": now() + 60}), SECRET)})), Ok(()));
        assert_eq!(v.verify(&json!({})), Err(AuthError::MissingToken));
        assert_eq!(v.verify(&json!({"token": 5})), Err(AuthError::MissingToken));
        assert_eq!(v.verify(&json!({"token": token(json!({"exp": now() - 3600}), SECRET)})), Err(AuthError::Expired));
        assert!(matches!(
            v.verify(&json!({"token": token(json!({}), "another-secret-of-enough-length")})),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(v.verify(&json!({"token": "garbage"})), Err(AuthError::Invalid(_))));
        // alg=none / other algorithms are refused.
        let hs512 =
            encode(&Header::new(Algorithm::HS512), &json!({}), &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
        assert!(matches!(v.verify(&json!({"token": hs512})), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn issuer_and_audience() {
        let v = JwtVerifier::from_config(&cfg("me", "gw")).unwrap();
        assert_eq!(v.verify(&json!({"token": token(json!({"iss": "me", "aud": "gw"}), SECRET)})), Ok(()));
        assert!(v.verify(&json!({"token": token(json!({"iss": "you", "aud": "gw"}), SECRET)})).is_err());
        assert!(v.verify(&json!({"token": token(json!({"aud": "gw"}), SECRET)})).is_err());
    }
}
