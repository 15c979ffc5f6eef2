//! One function per client event. Each answers through the event's ack when the client asked
//! for one (`{ok: true, …}` or `{ok: false, error}`), else failures are emitted as `error`
//! (`{event, code, message}`). The sender is always the authenticated socket's user.

use actix_socketio::{AckSender, Event, Socket};
use chat_domain::webrtc::{self, IceCandidate, SdpType, SessionDescription};
use chat_domain::{ChatPayload, DomainError, ErrorCode, MessageId, Timestamp, UserId};
use chat_signaling::{ChatError, ChatService, SearchFilters};
use serde_json::{Map, Value, json};

use crate::realtime::handler::SocketState;
use crate::state::AppState;

/// A failed event, in the contract's terms.
#[derive(Debug)]
pub struct Failure {
    code: ErrorCode,
    message: String,
}

impl From<DomainError> for Failure {
    fn from(error: DomainError) -> Self {
        Self {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<ChatError> for Failure {
    fn from(error: ChatError) -> Self {
        if let ChatError::Storage(cause) = &error {
            tracing::warn!(error = %cause, "storage failed during an event");
        }
        Self {
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<chat_storage::StorageError> for Failure {
    fn from(error: chat_storage::StorageError) -> Self {
        Failure::from(ChatError::from(error))
    }
}

type Outcome = Result<Map<String, Value>, Failure>;

fn ok() -> Outcome {
    Ok(Map::new())
}

fn ok_with(key: &str, value: Value) -> Outcome {
    let mut fields = Map::new();
    fields.insert(key.to_owned(), value);
    Ok(fields)
}

/// Answers a refused event (rate limit) without running it.
pub fn reply_error(socket: &Socket<SocketState>, event: Event, code: ErrorCode, message: &str) {
    respond(
        socket,
        &event.name,
        event.ack,
        Err(Failure {
            code,
            message: message.to_owned(),
        }),
    );
}

fn respond(socket: &Socket<SocketState>, name: &str, ack: Option<AckSender>, outcome: Outcome) {
    match (ack, outcome) {
        (Some(ack), Ok(mut fields)) => {
            fields.insert("ok".into(), Value::Bool(true));
            let _ = ack.send(&Value::Object(fields));
        }
        (Some(ack), Err(failure)) => {
            let _ = ack.send(&json!({"ok": false, "error": {"code": failure.code.as_str(), "message": failure.message}}));
        }
        (None, Ok(_)) => {}
        (None, Err(failure)) => {
            let shown: String = name.chars().take(64).collect();
            let _ = socket.emit(
                "error",
                &json!({"event": shown, "code": failure.code.as_str(), "message": failure.message}),
            );
        }
    }
}

/// Runs one client event.
pub async fn dispatch(state: &AppState, socket: &Socket<SocketState>, event: Event) {
    let Event {
        name, args, ack, ..
    } = event;
    let user = socket.state().user_id.clone();
    record_activity(state, &user, name == "presence:heartbeat").await;
    let payload = args.first().unwrap_or(&Value::Null);
    let hub = &state.hub;
    // Membership first (this node's link, no I/O): outside a chat the payload is not judged.
    if needs_chat(&name) && !hub.chat.in_chat(&user) {
        let outcome = match name.strip_prefix("webrtc:") {
            Some(what) => webrtc(socket, what, Err(ChatError::not_in_chat())),
            None => Err(ChatError::not_in_chat().into()),
        };
        respond(socket, &name, ack, outcome);
        return;
    }
    let outcome = match name.as_str() {
        "presence:heartbeat" => ok_with("serverTime", json!(Timestamp::now())),
        "presence:online" => set_online(state, &user, payload).await,
        "stats:request" => match state.store.stats(Timestamp::now()).await {
            Ok(stats) => {
                let _ = socket.emit(
                    "stats:update",
                    &json!({"stats": stats, "timestamp": Timestamp::now()}),
                );
                ok()
            }
            Err(error) => Err(error.into()),
        },
        "users:online:request" => online_users(state, socket, payload).await,
        "match:search" => match SearchFilters::from_payload(Some(payload)) {
            Ok(filters) => hub
                .chat
                .search(&user, filters)
                .await
                .map_or_else(|error| Err(error.into()), |()| ok()),
            Err(error) => Err(error.into()),
        },
        "match:cancel" => hub
            .chat
            .cancel(&user)
            .await
            .map_or_else(|error| Err(error.into()), |()| ok()),
        "match:next" => match SearchFilters::from_payload(Some(payload)) {
            Ok(filters) => hub
                .chat
                .next(&user, filters)
                .await
                .map_or_else(|error| Err(error.into()), |()| ok()),
            Err(error) => Err(error.into()),
        },
        "chat:message" => send_message(state, &user, payload).await,
        "message:delivered" => confirm(state, &user, payload),
        "chat:typing" => match payload.get("isTyping").and_then(Value::as_bool) {
            Some(is_typing) => hub
                .chat
                .typing(&user, is_typing)
                .map_or_else(|error| Err(error.into()), |()| ok()),
            None => Err(DomainError::invalid("isTyping must be a boolean").into()),
        },
        "chat:leave" => hub
            .chat
            .leave(&user)
            .await
            .map_or_else(|error| Err(error.into()), |()| ok()),
        "user:report" => report(state, socket, &user, payload).await,
        "chat:clear" => hub.chat.clear(&user).await.map_or_else(
            |error| Err(error.into()),
            |deleted| ok_with("deletedFiles", json!(deleted)),
        ),
        "webrtc:offer" => webrtc(socket, "offer", offer(&hub.chat, &user, payload)),
        "webrtc:answer" => webrtc(socket, "answer", answer(&hub.chat, &user, payload)),
        "webrtc:ice-candidate" => webrtc(socket, "candidate", candidate(&hub.chat, &user, payload)),
        "webrtc:call-end" => webrtc(socket, "call-end", hub.chat.end_call(&user, false)),
        "webrtc:call-reject" => webrtc(socket, "call-reject", hub.chat.end_call(&user, true)),
        _ => Err(DomainError::invalid("Unknown event").into()),
    };
    respond(socket, &name, ack, outcome);
}

/// Whether the event needs a chat (`chat:*`, `webrtc:*`): outside one it fails with
/// `not_in_chat` whatever its payload.
fn needs_chat(name: &str) -> bool {
    matches!(
        name,
        "chat:message"
            | "chat:typing"
            | "chat:leave"
            | "chat:clear"
            | "webrtc:offer"
            | "webrtc:answer"
            | "webrtc:ice-candidate"
            | "webrtc:call-end"
            | "webrtc:call-reject"
    )
}

/// Every event is activity (see [`chat_presence_stats::SessionLifecycle::activity`]).
async fn record_activity(state: &AppState, user: &UserId, heartbeat: bool) {
    state.hub.lifecycle.activity(user, heartbeat).await;
}

async fn set_online(state: &AppState, user: &UserId, payload: &Value) -> Outcome {
    let online = payload
        .get("isOnline")
        .and_then(Value::as_bool)
        .ok_or_else(|| DomainError::invalid("isOnline must be a boolean"))?;
    state.hub.lifecycle.set_online(user, online).await?;
    ok_with("isOnline", Value::Bool(online))
}

async fn online_users(state: &AppState, socket: &Socket<SocketState>, payload: &Value) -> Outcome {
    let limit = match payload.get("limit") {
        None | Some(Value::Null) => 50,
        Some(value) => match value.as_u64() {
            Some(limit) if limit > 0 => limit.min(100) as usize,
            _ => {
                return Err(
                    DomainError::invalid("limit must be a whole number from 1 to 100").into(),
                );
            }
        },
    };
    let page = state.store.online_users(limit, None).await?;
    let _ = socket.emit("users:online:update", &page.users);
    ok()
}

async fn send_message(state: &AppState, user: &UserId, payload: &Value) -> Outcome {
    let message = ChatPayload::from_json(payload)?;
    let sent = state.hub.chat.send_message(user, message).await?;
    ok_with(
        "message",
        json!({"id": sent.id, "clientId": sent.client_id, "timestamp": sent.timestamp, "status": "sent"}),
    )
}

fn confirm(state: &AppState, user: &UserId, payload: &Value) -> Outcome {
    let id = payload
        .get("id")
        .and_then(Value::as_str)
        .and_then(MessageId::parse)
        .ok_or_else(|| DomainError::invalid("id must be a message id"))?;
    let confirmed = state.hub.chat.confirm_delivery(user, &id);
    ok_with("confirmed", Value::Bool(confirmed))
}

/// `user:report`: `{reason, details?}` about the partner, or the last one within 120 s of
/// their room closing (`not_in_chat` when there is none, whatever the payload). A repeat
/// answers the first report's id. The report that makes enough distinct reporters bans.
async fn report(
    state: &AppState,
    socket: &Socket<SocketState>,
    user: &UserId,
    payload: &Value,
) -> Outcome {
    let (partner, room) = state
        .hub
        .chat
        .partner_to_report(user)
        .ok_or_else(ChatError::not_in_chat)?;
    let request = chat_domain::ReportRequest::from_payload(payload)?;
    // A partner whose session is gone is reported all the same (their id is kept).
    let reported = match state.store.get(&partner).await? {
        Some(session) => session,
        None => {
            let mut gone =
                chat_domain::GuestUser::new(chat_domain::Profile::default(), Timestamp::now());
            gone.id = partner;
            gone
        }
    };
    let outcome = state
        .moderation
        .report(user, &reported, Some(room), request, socket.state().address)
        .await?;
    if !outcome.duplicate {
        state.metrics.report_filed();
    }
    if let Some(ban) = &outcome.ban {
        crate::moderation::enforce(state, ban).await;
    }
    ok_with("reportId", json!(outcome.report.id))
}

/// `webrtc:offer`: `{offer: {type: "offer", sdp}, type?: "audio" | "video"}`, checked (once
/// the user is known to be in a chat) before the chat is asked.
fn offer(chat: &ChatService, user: &UserId, payload: &Value) -> Result<(), ChatError> {
    let description = SessionDescription::parse(payload.get("offer"), SdpType::Offer)?;
    let kind = webrtc::parse_call_kind(payload.get("type"))?;
    chat.offer(user, description, kind)
}

/// `webrtc:answer`: `{answer: {type: "answer", sdp}}`, checked first.
fn answer(chat: &ChatService, user: &UserId, payload: &Value) -> Result<(), ChatError> {
    let description = SessionDescription::parse(payload.get("answer"), SdpType::Answer)?;
    chat.answer(user, description)
}

/// `webrtc:ice-candidate`: `{candidate: RTCIceCandidateInit}`, checked first.
fn candidate(chat: &ChatService, user: &UserId, payload: &Value) -> Result<(), ChatError> {
    chat.candidate(user, IceCandidate::parse(payload.get("candidate"))?)
}

/// WebRTC failures also emit `webrtc:error` with the original's messages.
fn webrtc(socket: &Socket<SocketState>, what: &str, result: Result<(), ChatError>) -> Outcome {
    let Err(error) = result else { return ok() };
    let message = match &error {
        ChatError::PartnerUnavailable | ChatError::PartnerUnreachable => {
            "Connected user is not available".to_owned()
        }
        ChatError::Domain(DomainError::NotInChat) => "Not connected to user".to_owned(),
        ChatError::Domain(DomainError::InvalidInput(_) | DomainError::TooLarge(_)) => {
            format!("Invalid {what} format")
        }
        _ => error.to_string(),
    };
    let _ = socket.emit("webrtc:error", &json!({ "message": message }));
    Err(error.into())
}
