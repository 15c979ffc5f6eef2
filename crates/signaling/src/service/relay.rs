//! The relay: `chat:message` and its receipt, `chat:typing`, `chat:leave`, `chat:clear`.
//! Nothing here reads shared state for a text message: the sender's link names the partner.

use std::sync::{Arc, Weak};

use chat_domain::{
    ChatBody, ChatPayload, DomainError, FileId, FileInfo, FileType, Message, MessageContent,
    MessageId, MessageStatus, MessageType, RoomId, Timestamp, UserId,
};

use super::{ChatService, Inner};
use crate::delivery::{CloseReason, Outgoing};
use crate::error::ChatError;

/// What the sender's ack of `chat:message` carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The server's id of the message.
    pub id: MessageId,
    /// The client's own id, echoed.
    pub client_id: Option<String>,
    /// When the server routed it.
    pub timestamp: Timestamp,
}

/// The delivery receipt of one message to one recipient on this node, handed to the
/// [`Delivery`](crate::Delivery) with the message. Confirming it is what `message:delivered`
/// does: the sender hears of it once, whichever comes first.
///
/// It holds the chat weakly: a receipt kept by a socket never keeps the service alive.
pub struct Receipt {
    service: Weak<Inner>,
    recipient: UserId,
    id: MessageId,
}

impl Receipt {
    pub(super) fn new(service: &Arc<Inner>, recipient: &UserId, id: &MessageId) -> Self {
        Self {
            service: Arc::downgrade(service),
            recipient: recipient.clone(),
            id: id.clone(),
        }
    }

    /// The message this receipt is for.
    pub fn message_id(&self) -> &MessageId {
        &self.id
    }

    /// The recipient acknowledged the message: tells the sender (once). Returns whether a
    /// receipt was sent (not when it was already confirmed, forgotten, or the chat is gone).
    pub fn confirm(self) -> bool {
        self.service
            .upgrade()
            .is_some_and(|inner| ChatService { inner }.confirm_delivery(&self.recipient, &self.id))
    }
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Receipt")
            .field("recipient", &self.recipient)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ChatService {
    /// `chat:message`: relays a message to the partner and returns what the sender's ack says
    /// (`unavailable` while the partner is away, or on a node this one cannot reach).
    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn send_message(
        &self,
        user: &UserId,
        payload: ChatPayload,
    ) -> Result<SentMessage, ChatError> {
        let (room, recipient, own_name, _) = self.sides(user, true)?;
        let local = self.route(&recipient)?;
        let (kind, content) = self
            .content(&room.room_id, payload.body, &recipient)
            .await?;
        let timestamp = Timestamp::now();
        let id = MessageId::generate(timestamp);
        let message = Message {
            id: id.clone(),
            room_id: room.room_id,
            sender_id: user.clone(),
            sender_username: own_name,
            kind,
            content,
            timestamp,
            status: MessageStatus::Delivered,
        };
        self.deliver_to(&recipient, Outgoing::Message(Box::new(message)), local);
        self.deliver(
            user,
            Outgoing::Sent {
                id: id.clone(),
                client_id: payload.client_id.clone(),
                timestamp,
            },
        );
        Ok(SentMessage {
            id,
            client_id: payload.client_id,
            timestamp,
        })
    }

    /// The message content of `body` as `recipient` sees it (files with their own URL).
    async fn content(
        &self,
        room: &RoomId,
        body: ChatBody,
        recipient: &UserId,
    ) -> Result<(MessageType, MessageContent), ChatError> {
        Ok(match body {
            ChatBody::Text(text) => (MessageType::Text, MessageContent::Text(text)),
            ChatBody::File(file_id) => (
                MessageType::File,
                self.file_content(room, &file_id, recipient, false).await?,
            ),
            ChatBody::Voice(file_id) => (
                MessageType::Voice,
                self.file_content(room, &file_id, recipient, true).await?,
            ),
        })
    }

    async fn file_content(
        &self,
        room: &RoomId,
        file: &FileId,
        viewer: &UserId,
        voice: bool,
    ) -> Result<MessageContent, ChatError> {
        let not_here = || DomainError::Forbidden("file does not belong to this chat".into());
        let meta = self
            .inner
            .sessions
            .file_meta(file)
            .await?
            .ok_or_else(not_here)?;
        if &meta.room_id != room {
            return Err(not_here().into());
        }
        if voice != (meta.file_type == FileType::Voice) {
            let expected = if voice {
                "a voice message needs a voice upload"
            } else {
                "a voice upload must be sent as a voice message"
            };
            return Err(DomainError::invalid(expected).into());
        }
        Ok(MessageContent::File(FileInfo {
            file_url: self.inner.urls.url_for(file, viewer),
            file_id: meta.file_id,
            filename: meta.filename,
            file_type: meta.file_type,
            file_size: meta.size,
            duration: meta.duration,
            expires_at: meta.expires_at,
        }))
    }

    /// `message:delivered` (or a [`Receipt`] confirmed) from `recipient`: tells the sender
    /// once. Returns whether a receipt was sent.
    pub fn confirm_delivery(&self, recipient: &UserId, id: &MessageId) -> bool {
        let sender = self
            .state()
            .links
            .get_mut(recipient)
            .and_then(|link| link.confirm_receipt(id));
        let Some(sender) = sender else {
            return false;
        };
        self.deliver(
            &sender,
            Outgoing::Delivered {
                id: id.clone(),
                delivered_at: Timestamp::now(),
            },
        );
        true
    }

    /// `chat:typing` (dropped while the partner is away; `unavailable` while the partner's
    /// node cannot be reached).
    pub fn typing(&self, user: &UserId, is_typing: bool) -> Result<(), ChatError> {
        let (_, partner, _, away) = self.sides(user, false)?;
        if !away {
            let local = self.route(&partner)?;
            self.deliver_to(
                &partner,
                Outgoing::Typing {
                    from: user.clone(),
                    is_typing,
                },
                local,
            );
        }
        Ok(())
    }

    /// `chat:leave`: closes the room; the partner gets `partner_left`, the leaver `left`.
    pub async fn leave(&self, user: &UserId) -> Result<(), ChatError> {
        let (room, partner, _, _) = self.sides(user, false)?;
        self.close(
            &room,
            vec![
                (partner, CloseReason::PartnerLeft),
                (user.clone(), CloseReason::Left),
            ],
        )
        .await;
        Ok(())
    }

    /// `chat:clear`: deletes the room's files; the partner gets `chat:cleared`.
    pub async fn clear(&self, user: &UserId) -> Result<u64, ChatError> {
        let (room, partner, _, _) = self.sides(user, false)?;
        let deleted = self.inner.sessions.delete_room_files(&room.room_id).await?;
        self.deliver(&partner, Outgoing::Cleared);
        Ok(deleted)
    }
}
