//! Tokens (HS256 JWTs with `sub`, `sid`, `iat`, `exp`) and the authenticated-user extractor.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use chat_domain::{GuestUser, SessionId, Timestamp, UserId};
use futures_util::future::LocalBoxFuture;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// The claims of a session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// Issued at, unix seconds.
    pub iat: i64,
    /// Expires at, unix seconds.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Signature, algorithm, shape or claims are wrong.
    #[error("Invalid token")]
    Invalid,
    /// `exp` has passed.
    #[error("Token has expired")]
    Expired,
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Invalid => Self::invalid_token(),
            TokenError::Expired => Self::token_expired(),
        }
    }
}

/// Issues and verifies session tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl TokenService {
    /// A service signing with `secret`; tokens live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A token for `user`, issued at `now`; returns it with its expiry.
    pub fn issue(
        &self,
        user_id: &UserId,
        session_id: SessionId,
        now: Timestamp,
    ) -> Result<(String, Timestamp), ApiError> {
        let expires_at = Timestamp::from_millis(now.as_secs() * 1000).plus(self.ttl);
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session_id.to_string(),
            iat: now.as_secs(),
            exp: expires_at.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| {
            tracing::error!(%error, "token signing failed");
            ApiError::internal()
        })?;
        Ok((token, expires_at))
    }

    /// Verifies signature, algorithm and expiry, and parses the ids.
    pub fn verify(&self, token: &str) -> Result<(UserId, SessionId), TokenError> {
        self.verify_at(token, Timestamp::now())
    }

    /// [`TokenService::verify`] at the instant `now`: a token is expired from its `exp`
    /// second on (`now >= exp`, as the original's library judges it).
    pub fn verify_at(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(UserId, SessionId), TokenError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        // jsonwebtoken accepts a token through its `exp` second (`exp < now` fails); the
        // contract expires it at that second.
        if data.claims.exp <= now.as_secs() {
            return Err(TokenError::Expired);
        }
        let user_id = UserId::parse(&data.claims.sub).ok_or(TokenError::Invalid)?;
        let session_id = SessionId::parse(&data.claims.sid).ok_or(TokenError::Invalid)?;
        Ok((user_id, session_id))
    }
}

/// Extracts the bearer token of an `Authorization` header: `Ok(None)` when there is no
/// header, an error when there is one that is not `Bearer <token>`.
pub fn bearer_token(request: &HttpRequest) -> Result<Option<&str>, ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::invalid_token())?;
    let (scheme, token) = text
        .trim()
        .split_once(' ')
        .ok_or_else(ApiError::invalid_token)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::invalid_token());
    }
    Ok(Some(token))
}

/// Checks a token against the store: the session must be live and be the token's session.
/// Counts as activity (slides the session's expiry) when `touch` is set.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    touch: bool,
) -> Result<GuestUser, ApiError> {
    let (user_id, session_id) = state.tokens.verify(token)?;
    let user = if touch {
        state.hub.lifecycle.request_activity(&user_id).await?
    } else {
        state.store.get(&user_id).await?
    };
    match user {
        Some(user) if user.session_id == session_id => Ok(user),
        _ => Err(ApiError::session_not_found()),
    }
}

/// The authenticated guest of a request (🔒 routes); its session's expiry has been slid.
#[derive(Debug, Clone)]
pub struct AuthUser(pub GuestUser);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let token = bearer_token(request).map(|token| token.map(str::to_owned));
        let state = request.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.ok_or_else(ApiError::internal)?;
            let token = token.and_then(|token| token.ok_or_else(ApiError::auth_required));
            let user = match token {
                Ok(token) => authenticate(&state, &token, true).await,
                Err(error) => Err(error),
            };
            user.map(AuthUser)
                .inspect_err(|error| state.metrics.http_refused(error.code()))
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn service() -> TokenService {
        TokenService::new(SECRET, Duration::from_secs(60))
    }

    #[test]
    fn issued_tokens_verify() {
        let user = UserId::generate();
        let session = SessionId::generate();
        let (token, expires) = service()
            .issue(&user, session, Timestamp::now())
            .unwrap_or_default();
        assert_eq!(service().verify(&token), Ok((user, session)));
        assert!(expires > Timestamp::now());
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let user = UserId::generate();
        let session = SessionId::generate();
        let old = Timestamp::now().minus(Duration::from_secs(120));
        let (expired, _) = service().issue(&user, session, old).unwrap_or_default();
        assert_eq!(service().verify(&expired), Err(TokenError::Expired));

        // Expired from the `exp` second on, valid the second before.
        let (token, expires) = service()
            .issue(&user, session, Timestamp::now())
            .unwrap_or_default();
        let at = |secs: i64| Timestamp::from_millis(secs * 1000);
        assert_eq!(
            service().verify_at(&token, at(expires.as_secs() - 1)),
            Ok((user.clone(), session))
        );
        assert_eq!(
            service().verify_at(&token, at(expires.as_secs())),
            Err(TokenError::Expired)
        );

        let (token, _) = service()
            .issue(&user, session, Timestamp::now())
            .unwrap_or_default();
        let other = TokenService::new(b"another-secret-another-secret-xx", Duration::from_secs(60));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(service().verify(&unsigned), Err(TokenError::Invalid));

        let hs512 = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS512","typ":"JWT"}"#);
        parts[0] = hs512;
        assert_eq!(service().verify(&parts.join(".")), Err(TokenError::Invalid));
        assert_eq!(service().verify("garbage"), Err(TokenError::Invalid));
        assert_eq!(service().verify(""), Err(TokenError::Invalid));
    }
}
