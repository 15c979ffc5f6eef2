//! [`ChatHandler`]: authenticates Socket.IO connections and hands their events to
//! [`crate::realtime::events`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_socketio::{ConnectError, DisconnectReason, Event, Handler, RequestInfo, Socket};
use actix_web::HttpRequest;
use actix_web::http::header;
use chat_domain::{SessionId, UserId};
use chat_presence_stats::Connected;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::auth::TokenError;
use crate::client_ip::request_ip;
use crate::metrics::{self, MatchClock, Metrics};
use crate::realtime::events;
use crate::realtime::rate::{HandshakeLimit, TokenBucket};
use crate::state::AppState;

/// What a socket knows of its user.
pub struct SocketState {
    /// The authenticated user.
    pub user_id: UserId,
    /// Their session.
    pub session_id: SessionId,
    /// Events allowed per second.
    pub rate: Mutex<TokenBucket>,
    /// Since when this socket's user searches (for the match wait metric).
    pub match_clock: MatchClock,
    /// The client's address (behind trusted proxies, the forwarded one), for reports.
    pub address: Option<std::net::IpAddr>,
}

/// The chat's Socket.IO handler.
#[derive(Clone)]
pub struct ChatHandler {
    state: AppState,
    handshakes: Arc<HandshakeLimit>,
}

impl ChatHandler {
    /// A handler over the gateway's state.
    pub fn new(state: AppState) -> Self {
        let handshakes = Arc::new(HandshakeLimit::new(
            state.settings.rate.handshakes_per_10s,
            Duration::from_secs(10),
        ));
        Self { state, handshakes }
    }
}

/// The token of a handshake: `auth.token`, else `?token=`, else `Authorization: Bearer`.
fn handshake_token(auth: Option<&Value>, request: &RequestInfo) -> Option<String> {
    if let Some(token) = auth
        .and_then(|auth| auth.get("token"))
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
    {
        return Some(token.to_owned());
    }
    let from_query = request
        .query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|token| !token.is_empty());
    if let Some(token) = from_query {
        return Some(token.to_owned());
    }
    let header = request.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| token.trim().to_owned())
}

impl Handler for ChatHandler {
    /// At most `rate.handshakes_per_10s` new connections per client address (behind trusted
    /// proxies, the forwarded address; IPv6 by /64), counted in the store shared by every node.
    fn allow_handshake(&self, request: &HttpRequest) -> impl Future<Output = bool> {
        let address = request_ip(request, &self.state.settings.server.trusted_proxies);
        let store = &self.state.store;
        let draining = self
            .state
            .draining
            .load(std::sync::atomic::Ordering::Acquire);
        async move {
            if draining {
                tracing::debug!("handshake refused: this node is draining");
                self.state.metrics.socket_refused("draining");
                return false;
            }
            let Some(address) = address else {
                return true;
            };
            let allowed = self
                .handshakes
                .allow(address, |key, limit, window| async move {
                    // The store sees the key's mark, never the address in it.
                    let key = self.state.moderation.rate_key(&key);
                    store.hit_rate_limit(&key, limit, window).await
                })
                .await;
            if !allowed {
                tracing::debug!(%address, "handshake refused: too many from this address");
                self.state.metrics.handshake_refused();
            }
            allowed
        }
    }

    type State = SocketState;

    async fn connect(
        &self,
        _socket_id: &str,
        _nsp: &str,
        auth: Option<Value>,
        request: &RequestInfo,
    ) -> Result<SocketState, ConnectError> {
        let refuse = |message: &str| {
            let reason = metrics::connect_refusal(message);
            self.state.metrics.socket_refused(reason);
            ConnectError(message.to_owned())
        };
        let token = handshake_token(auth.as_ref(), request)
            .ok_or_else(|| refuse("Authentication required"))?;
        let (user_id, session_id) =
            self.state
                .tokens
                .verify(&token)
                .map_err(|error| match error {
                    TokenError::Expired => refuse("Token has expired"),
                    TokenError::Invalid => refuse("Invalid token"),
                })?;
        let user = self.state.store.get(&user_id).await.ok().flatten();
        if user.is_none_or(|user| user.session_id != session_id) {
            return Err(refuse("Guest session not found"));
        }
        let address = crate::client_ip::client_ip(
            request.peer_addr.map(|peer| peer.ip()),
            &request.headers,
            &self.state.settings.server.trusted_proxies,
        );
        let moderation = &self.state.moderation;
        match moderation.ban_on_connect(&user_id, address).await {
            Ok(Some(_)) => return Err(refuse("Banned")),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "could not check bans at connect"),
        }
        if let Some(address) = address
            && let Err(error) = moderation.note_address(&user_id, address).await
        {
            tracing::warn!(%error, "could not note a client address");
        }
        let settings = &self.state.settings.rate;
        let rate = TokenBucket::new(
            settings.events_per_sec,
            settings.events_per_sec.saturating_mul(2),
        );
        Ok(SocketState {
            user_id,
            session_id,
            rate: Mutex::new(rate),
            match_clock: MatchClock::default(),
            address,
        })
    }

    async fn connected(&self, socket: &Socket<SocketState>) {
        let hub = &self.state.hub;
        let user_id = socket.state().user_id.clone();
        Metrics::bump(&self.state.metrics.socket_connects);
        if let Some(old) = hub.registry.insert(socket.clone()) {
            let _ = old.emit("session:replaced", &json!({}));
            old.disconnect();
        }
        // A socket of this session on another node is replaced too.
        hub.claim_user(&user_id).await;
        let Ok(Some(Connected { user, change })) =
            hub.lifecycle.connected(&user_id, socket.id()).await
        else {
            // The session vanished between CONNECT and now (or the store failed).
            hub.registry.remove(socket);
            socket.disconnect();
            return;
        };
        let established = json!({
            "userId": user.id,
            "username": user.username,
            "socketId": socket.id(),
            "sessionId": user.session_id,
            "isGuest": true,
        });
        let _ = socket.emit("connection:established", &established);
        hub.chat.user_connected(&user_id).await;
        // Only now, so that `realtime:stats` never reaches the socket before
        // `connection:established`.
        change.announce();
    }

    async fn event(&self, socket: &Socket<SocketState>, event: Event) {
        Metrics::bump(&self.state.metrics.socket_events);
        let allowed = socket
            .state()
            .rate
            .lock()
            .map(|mut bucket| bucket.take_at(Instant::now()))
            .unwrap_or(true);
        if !allowed {
            self.state.metrics.rate_limited("events");
            events::reply_error(
                socket,
                event,
                chat_domain::ErrorCode::RateLimited,
                "Too many events, slow down",
            );
            return;
        }
        let span = tracing::info_span!("socket_event", socket_id = %socket.id(), user_id = %socket.state().user_id, event = %crate::logging::shown(&event.name));
        let (label, started) = (metrics::event_label(&event.name), Instant::now());
        events::dispatch(&self.state, socket, event)
            .instrument(span)
            .await;
        self.state.metrics.event_handled(label, started.elapsed());
    }

    async fn disconnected(&self, socket: &Socket<SocketState>, reason: DisconnectReason) {
        let hub = Arc::clone(&self.state.hub);
        let user_id = socket.state().user_id.clone();
        tracing::debug!(user_id = %user_id, %reason, "socket disconnected");
        if reason == DisconnectReason::QueueFull {
            self.state.metrics.slow_client_dropped();
        }
        if !hub.registry.remove(socket) {
            // Replaced by a newer socket of the same session, or ended with its session.
            return;
        }
        hub.release_user(&user_id).await;
        let change = hub.lifecycle.disconnected(&user_id, socket.id()).await;
        hub.chat.user_disconnected(&user_id).await;
        change.announce();
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderValue};

    use super::*;

    fn request(query: &str, authorization: Option<&str>) -> RequestInfo {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        RequestInfo {
            peer_addr: None,
            headers,
            query: query.to_owned(),
        }
    }

    #[test]
    fn tokens_come_from_auth_then_query_then_header() {
        let auth = json!({"token": "from-auth"});
        assert_eq!(
            handshake_token(Some(&auth), &request("token=q", Some("Bearer h"))).as_deref(),
            Some("from-auth")
        );
        assert_eq!(
            handshake_token(None, &request("EIO=4&token=q", Some("Bearer h"))).as_deref(),
            Some("q")
        );
        assert_eq!(
            handshake_token(Some(&json!({})), &request("EIO=4", Some("Bearer h"))).as_deref(),
            Some("h")
        );
        assert_eq!(
            handshake_token(None, &request("EIO=4", Some("Basic h"))),
            None
        );
        assert_eq!(
            handshake_token(Some(&json!({"token": 5})), &request("token=", None)),
            None
        );
    }
}
