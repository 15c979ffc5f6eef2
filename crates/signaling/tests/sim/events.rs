//! How the model takes in what one socket was handed: each event updates the user's view
//! (room, searching) and is judged against what the sender saw when sending.

use chat_domain::{MessageId, RoomId, UserId};
use chat_signaling::Outgoing;
use tokio::time::Instant;

use super::model::{Checked, Expect, Model, NODE_TIMEOUT, SLACK, View, violation};
use super::node::{Closed, SocketId};

impl Model {
    pub(super) fn current(&self, label: usize, socket: SocketId) -> bool {
        self.users
            .get(&label)
            .and_then(|user| user.socket)
            .is_some_and(|sock| sock.id == socket)
    }

    pub(super) fn event(&mut self, label: usize, socket: SocketId, event: Outgoing) -> Checked {
        let current = self.current(label, socket);
        let Some(user) = self.users.get(&label) else {
            return Ok(());
        };
        let me = user.id.clone();
        match event {
            Outgoing::Found {
                room_id, partner, ..
            } => {
                self.found(label, current, room_id, partner.id)?;
            }
            Outgoing::RoomClosed { room_id, .. } if current => {
                if let Some(user) = self.users.get_mut(&label)
                    && user.view.as_ref().is_some_and(|view| view.room == room_id)
                {
                    user.view = None;
                }
            }
            Outgoing::Searching if current => self.set_searching(label, true),
            Outgoing::Cancelled if current => self.set_searching(label, false),
            Outgoing::Message(message) => {
                let Some(record) = self.messages.get_mut(&message.id) else {
                    return violation(
                        "messages come from senders",
                        format!("u{label} got {}, which nobody sent", message.id),
                    );
                };
                record.delivered += 1;
                let (recipient, sender, room, delivered) = (
                    record.recipient.clone(),
                    record.sender.clone(),
                    record.room.clone(),
                    record.delivered,
                );
                if recipient.as_ref() != Some(&me) {
                    let intended = recipient.map_or_else(
                        || "nobody (the sender saw no chat)".to_owned(),
                        |to| self.name(&to),
                    );
                    return violation(
                        "a message reaches the sender's partner at send time only",
                        format!(
                            "{} sent {} meant for {intended}; u{label} got it",
                            self.name(&sender),
                            message.id
                        ),
                    );
                }
                if message.sender_id != sender || Some(&message.room_id) != room.as_ref() {
                    return violation(
                        "a message keeps its sender and room",
                        format!(
                            "{} arrived as from {} in {}",
                            message.id,
                            self.name(&message.sender_id),
                            message.room_id
                        ),
                    );
                }
                if delivered > 1 {
                    return violation(
                        "a message is delivered once",
                        format!("u{label} got {} {delivered} times", message.id),
                    );
                }
                self.fulfil(label, &message.id, false);
            }
            Outgoing::Sent { id, .. }
                if self
                    .messages
                    .get(&id)
                    .is_some_and(|record| record.sender != me) =>
            {
                return violation(
                    "message:sent goes to the sender",
                    format!("u{label} was told {id} was sent"),
                );
            }
            Outgoing::Delivered { id, .. } => {
                let Some(record) = self.messages.get_mut(&id) else {
                    return violation(
                        "receipts follow acks",
                        format!("u{label} got a receipt for unknown {id}"),
                    );
                };
                record.receipts += 1;
                let (sender, confirmed, receipts) =
                    (record.sender.clone(), record.confirmed, record.receipts);
                if sender != me || !confirmed || receipts > 1 {
                    return violation(
                        "a receipt reaches the sender once, after the ack",
                        format!(
                            "u{label} got receipt #{receipts} of {id} from {} (confirmed: {confirmed})",
                            self.name(&sender)
                        ),
                    );
                }
                self.fulfil(label, &id, true);
            }
            Outgoing::Typing { from, .. } if !self.typing.contains(&(from.clone(), me)) => {
                return violation(
                    "typing reaches the sender's partner only",
                    format!("u{label} got typing from {}", self.name(&from)),
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn set_searching(&mut self, label: usize, searching: bool) {
        if let Some(user) = self.users.get_mut(&label) {
            user.searching = searching;
        }
    }

    fn found(&mut self, label: usize, current: bool, room: RoomId, partner: UserId) -> Checked {
        let now = Instant::now();
        let Some(partner_label) = self.label_of(&partner) else {
            return violation(
                "matches are between users",
                format!("u{label} was matched with a stranger {partner}"),
            );
        };
        if partner_label == label {
            return violation(
                "nobody is matched with themselves",
                format!("u{label} in {room}"),
            );
        }
        // The room the client already sees, announced again (on a reconnect elsewhere), is
        // no new match.
        let repeated = self
            .users
            .get(&label)
            .and_then(|user| user.view.as_ref())
            .is_some_and(|view| view.room == room);
        if let Some(other) = self.users.get(&partner_label).filter(|_| !repeated) {
            // A match:found held on a paused bus may arrive after its partner ended.
            if other.ended.is_some_and(|ended| ended > self.last_resume) {
                return violation(
                    "no ended session is matched",
                    format!("u{label} was matched with u{partner_label}, whose session ended"),
                );
            }
            if other.socket.is_none()
                && now > other.gone_since.max(self.last_resume) + NODE_TIMEOUT + SLACK
            {
                return violation(
                    "no ghost match (a partner without a socket)",
                    format!(
                        "u{label} was matched with u{partner_label}, without a socket for {:?}",
                        now - other.gone_since
                    ),
                );
            }
        }
        if !current {
            return Ok(());
        }
        if let Some(user) = self.users.get_mut(&label) {
            if let Some(old) = user.view.take().filter(|old| old.room != room) {
                self.two_rooms.push((label, old.room));
            }
            user.view = Some(View {
                room,
                partner,
                since: now,
            });
            user.searching = false;
        }
        Ok(())
    }

    pub(super) fn closed(&mut self, label: usize, socket: SocketId, why: Closed) -> Checked {
        let current = self.current(label, socket);
        let Some(user) = self.users.get_mut(&label) else {
            return Ok(());
        };
        if !current {
            user.stale_sockets.remove(&socket);
            return Ok(());
        }
        match why {
            Closed::Replaced => {
                return violation(
                    "a replace only closes an older socket",
                    format!("u{label}'s newest socket s{socket} was closed as replaced"),
                );
            }
            Closed::Ended { .. } if user.ended.is_none() => {
                return violation(
                    "only ended sessions are ended",
                    format!("u{label}'s socket s{socket} was ended"),
                );
            }
            Closed::Ended { .. } | Closed::NodeDied => {
                user.socket = None;
                user.gone_since = Instant::now();
                user.searching = false;
            }
        }
        Ok(())
    }

    pub(super) fn swept(&mut self, label: usize) -> Checked {
        let Some(user) = self.users.get_mut(&label) else {
            return Ok(());
        };
        match user.expiry {
            Some(false) => {
                user.expiry = Some(true);
                Ok(())
            }
            Some(true) => violation(
                "an expired session is swept once",
                format!("u{label} swept twice"),
            ),
            None => violation(
                "only expired sessions are swept",
                format!("u{label} was swept"),
            ),
        }
    }

    fn fulfil(&mut self, label: usize, id: &MessageId, receipt: bool) {
        self.expects.retain(|expect| match expect {
            Expect::Message { to, id: wanted, .. } => receipt || *to != label || wanted != id,
            Expect::Receipt { to, id: wanted, .. } => !receipt || *to != label || wanted != id,
        });
    }
}
