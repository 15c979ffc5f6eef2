//! The model: what each simulated client can know from the events its sockets received
//! and from the results of its own operations, and the invariants checked against it.
//!
//! Each user's view of their room is their last `match:found` minus a later `room:closed`
//! (or what a reconnect said). Messages, receipts and typing flags are remembered with the
//! partner the sender saw when sending, so a delivery can be judged against it. The checks
//! that need the store are in `checks.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chat_domain::{MessageId, RoomId, UserId};
use tokio::time::Instant;

use super::node::{Connect, Entry, Seen, SocketId};

/// How long the cluster may take to notice a crashed node (`CLUSTER__NODE_TIMEOUT_SECS`),
/// and how long a session end may take to reach a socket on another node.
pub const NODE_TIMEOUT: Duration = chat_signaling::cluster::NODE_TIMEOUT;
/// Added to every deadline: sweeps, bus hops, the step that notices it.
pub const SLACK: Duration = Duration::from_secs(2);

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// What the model saw.
    pub detail: String,
}

/// The result of a check.
pub type Checked = Result<(), Violation>;

pub(super) fn violation(invariant: &'static str, detail: String) -> Checked {
    Err(Violation { invariant, detail })
}

/// A live socket of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sock {
    /// Its id.
    pub id: SocketId,
    /// The node slot it is on.
    pub slot: usize,
}

/// The room a user believes they are in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The room.
    pub room: RoomId,
    /// The partner `match:found` named.
    pub partner: UserId,
    /// Since when.
    pub since: Instant,
}

/// One simulated user (their client and what the model knows of their session).
#[derive(Debug)]
pub struct UserModel {
    /// `u<label>` in the schedule.
    pub label: usize,
    /// The session's user id.
    pub id: UserId,
    /// When the session ended (deleted or expired), if it did.
    pub ended: Option<Instant>,
    /// It ended by expiry, and whether a sweep has handed it out yet.
    pub expiry: Option<bool>,
    /// The socket the client uses now.
    pub socket: Option<Sock>,
    /// Replaced sockets the server has not closed yet.
    pub stale_sockets: BTreeSet<SocketId>,
    /// Without a live socket since (creation, or the last drop).
    pub gone_since: Instant,
    /// The room as the client sees it.
    pub view: Option<View>,
    /// Searching, as the client was told (`match:searching` until found or cancelled).
    pub searching: bool,
    /// The node slots sockets dropped from, and when.
    pub drops: Vec<(usize, Instant)>,
}

/// A message the model saw accepted.
#[derive(Debug)]
pub(super) struct SentRecord {
    pub(super) sender: UserId,
    /// The partner the sender saw when sending (`None`: the sender saw no chat).
    pub(super) recipient: Option<UserId>,
    pub(super) room: Option<RoomId>,
    pub(super) delivered: u32,
    pub(super) confirmed: bool,
    pub(super) receipts: u32,
}

/// Something that must arrive once the bus is open.
#[derive(Debug)]
pub(super) enum Expect {
    Message {
        to: usize,
        socket: SocketId,
        id: MessageId,
    },
    Receipt {
        to: usize,
        socket: SocketId,
        id: MessageId,
    },
}

/// Everything the model knows.
#[derive(Debug)]
pub struct Model {
    /// Users by label.
    pub users: BTreeMap<usize, UserModel>,
    by_id: HashMap<UserId, usize>,
    pub(super) messages: HashMap<MessageId, SentRecord>,
    /// `(from, to)` pairs a typing flag was sent between.
    pub(super) typing: HashSet<(UserId, UserId)>,
    pub(super) expects: Vec<Expect>,
    /// A user was told of a new room while their view held this one.
    pub(super) two_rooms: Vec<(usize, RoomId)>,
    /// The last step after which timers or held messages may still change things.
    pub last_disruption: Instant,
    /// The last time a paused bus let its messages through.
    pub last_resume: Instant,
    /// The chat's reconnect grace.
    pub grace: Duration,
}

impl Model {
    /// An empty model for a chat with `grace` of reconnect grace.
    pub fn new(grace: Duration) -> Self {
        let now = Instant::now();
        Self {
            users: BTreeMap::new(),
            by_id: HashMap::new(),
            messages: HashMap::new(),
            typing: HashSet::new(),
            expects: Vec::new(),
            two_rooms: Vec::new(),
            last_disruption: now,
            last_resume: now,
            grace,
        }
    }

    /// The label of user `id`.
    pub fn label_of(&self, id: &UserId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// `u<label>` for `id`, for messages.
    pub fn name(&self, id: &UserId) -> String {
        self.label_of(id)
            .map_or_else(|| format!("stranger {id}"), |label| format!("u{label}"))
    }

    /// A session was created.
    pub fn created(&mut self, label: usize, id: UserId) {
        self.by_id.insert(id.clone(), label);
        self.users.insert(
            label,
            UserModel {
                label,
                id,
                ended: None,
                expiry: None,
                socket: None,
                stale_sockets: BTreeSet::new(),
                gone_since: Instant::now(),
                view: None,
                searching: false,
                drops: Vec::new(),
            },
        );
    }

    /// Timers or held messages may change things from now on.
    pub fn disrupted(&mut self) {
        self.last_disruption = Instant::now();
    }

    /// A socket of `label` connected to `slot` (`takeover`: while another was live) and
    /// got `result` (whose room, per the store, is with `partner`); `paused`: some bus is
    /// paused, so a `match:found` may still be on its way: the client takes the room from
    /// the answer. `announced`: the new socket was handed the room's `match:found` while it
    /// connected.
    #[allow(clippy::too_many_arguments)]
    pub fn connected(
        &mut self,
        label: usize,
        socket: Sock,
        result: &Connect,
        partner: Option<UserId>,
        takeover: bool,
        paused: bool,
        announced: bool,
    ) -> Checked {
        let now = Instant::now();
        let grace = self.grace;
        let Some(user) = self.users.get(&label) else {
            return Ok(());
        };
        let room = match (result, user.ended) {
            (Connect::Refused, None) => {
                return violation("a live session connects", format!("u{label} was refused"));
            }
            (Connect::Refused, Some(_)) => return Ok(()),
            (Connect::Connected(_), Some(_)) => {
                return violation(
                    "no deleted session comes back",
                    format!("u{label} connected after its session ended"),
                );
            }
            (Connect::Connected(room), None) => room.clone(),
        };
        let partner_agrees = user.view.as_ref().is_some_and(|view| {
            self.label_of(&view.partner)
                .and_then(|partner| self.users.get(&partner))
                .is_some_and(|partner| {
                    partner.ended.is_none()
                        && partner.socket.is_some()
                        && partner
                            .view
                            .as_ref()
                            .is_some_and(|seen| seen.room == view.room && seen.partner == user.id)
                })
        });
        let within_grace = now + Duration::from_millis(100) < user.gone_since + grace;
        let past_grace = now > user.gone_since.max(self.last_resume) + grace + NODE_TIMEOUT + SLACK;
        let checked = match (&user.view, &room) {
            (Some(view), Some(room)) if &view.room != room => violation(
                "a reconnect keeps the room the client saw",
                format!("u{label} saw {} but the chat says {room}", view.room),
            ),
            (Some(view), Some(_)) if !takeover && !paused && past_grace => violation(
                "a room closes once the grace ran out",
                format!(
                    "u{label} came back {:?} after dropping and still has {}",
                    now - user.gone_since,
                    view.room
                ),
            ),
            (None, Some(room)) if !paused && !announced => violation(
                "every room a user is in was announced to them",
                format!("u{label} reconnected into {room}, never announced to them"),
            ),
            (Some(view), None) if !paused && partner_agrees && (takeover || within_grace) => {
                violation(
                    "a user back within the grace keeps the chat",
                    format!(
                        "u{label} came back {:?} after dropping and lost {}",
                        now - user.gone_since,
                        view.room
                    ),
                )
            }
            _ => Ok(()),
        };
        if let Some(user) = self.users.get_mut(&label) {
            if let Some(old) = user.socket.replace(socket) {
                user.stale_sockets.insert(old.id);
            }
            match (room, partner) {
                (None, _) => user.view = None,
                (Some(room), Some(partner)) if user.view.is_none() && paused => {
                    user.view = Some(View {
                        room,
                        partner,
                        since: now,
                    });
                }
                _ => {}
            }
        }
        checked
    }

    /// `label`'s socket dropped (the client's own disconnect).
    pub fn dropped(&mut self, label: usize) {
        if let Some(user) = self.users.get_mut(&label) {
            if let Some(socket) = user.socket {
                user.drops.push((socket.slot, Instant::now()));
            }
            user.socket = None;
            user.gone_since = Instant::now();
            user.searching = false;
        }
    }

    /// `label`'s session ended now (deleted, or `expired`).
    pub fn ended(&mut self, label: usize, expired: bool) {
        if let Some(user) = self.users.get_mut(&label) {
            user.ended = Some(Instant::now());
            user.searching = false;
            if expired {
                user.expiry = Some(false);
            }
        }
    }

    /// `label` left their room themselves (`match:next` answered ok).
    pub fn left(&mut self, label: usize) {
        if let Some(user) = self.users.get_mut(&label) {
            user.view = None;
        }
    }

    /// `label` sent message `id` (accepted); `paused`: some bus is paused.
    pub fn sent(&mut self, label: usize, id: MessageId, paused: bool) -> Checked {
        let Some(user) = self.users.get(&label) else {
            return Ok(());
        };
        let recipient = user.view.as_ref().map(|view| view.partner.clone());
        let record = SentRecord {
            sender: user.id.clone(),
            recipient: recipient.clone(),
            room: user.view.as_ref().map(|view| view.room.clone()),
            delivered: 0,
            confirmed: false,
            receipts: 0,
        };
        self.messages.insert(id.clone(), record);
        let Some(partner) = recipient
            .and_then(|partner| self.label_of(&partner))
            .and_then(|partner| self.users.get(&partner))
        else {
            return Ok(());
        };
        if paused {
            return Ok(());
        }
        if let Some(socket) = partner.socket {
            self.expects.push(Expect::Message {
                to: partner.label,
                socket: socket.id,
                id,
            });
            return Ok(());
        }
        let since = partner.gone_since.max(self.last_resume);
        if Instant::now() > since + NODE_TIMEOUT + SLACK {
            return violation(
                "no message is dropped silently",
                format!(
                    "u{label}'s message {id} was accepted for u{}, gone since {:?}",
                    partner.label,
                    Instant::now() - partner.gone_since
                ),
            );
        }
        Ok(())
    }

    /// `label` sent a typing flag (accepted).
    pub fn typed(&mut self, label: usize) {
        if let Some(user) = self.users.get(&label)
            && let Some(view) = &user.view
        {
            self.typing.insert((user.id.clone(), view.partner.clone()));
        }
    }

    /// `label` confirmed message `id`; `sent` is what the confirmation returned.
    pub fn confirmed(&mut self, id: &MessageId, sent: bool, paused: bool) {
        if !sent {
            return;
        }
        let Some(record) = self.messages.get_mut(id) else {
            return;
        };
        record.confirmed = true;
        let sender = record.sender.clone();
        if let Some(sender) = self
            .label_of(&sender)
            .and_then(|label| self.users.get(&label))
            && let Some(socket) = sender.socket
            && !paused
        {
            self.expects.push(Expect::Receipt {
                to: sender.label,
                socket: socket.id,
                id: id.clone(),
            });
        }
    }

    /// Takes in what the sockets were handed during a step.
    pub fn absorb(&mut self, entries: Vec<Entry>) -> Checked {
        for entry in entries {
            let Some(label) = self.label_of(&entry.user) else {
                return violation(
                    "events reach users only",
                    format!("an event for an unknown user {}", entry.user),
                );
            };
            match entry.seen {
                Seen::Event(event) => self.event(label, entry.socket, event)?,
                Seen::Closed(why) => self.closed(label, entry.socket, why)?,
                Seen::SweptExpired => self.swept(label)?,
            }
        }
        Ok(())
    }

    /// What must have arrived by now and did not, with every bus open: the first such.
    pub(super) fn unmet(&mut self) -> Checked {
        let expects = std::mem::take(&mut self.expects);
        for expect in expects {
            let (to, socket, id, what) = match &expect {
                Expect::Message { to, socket, id } => (*to, *socket, id, "message"),
                Expect::Receipt { to, socket, id } => (*to, *socket, id, "receipt"),
            };
            if self.current(to, socket) {
                return violation(
                    "messages and receipts reach a connected user",
                    format!("u{to} (socket s{socket}) never got the {what} of {id}"),
                );
            }
        }
        Ok(())
    }
}
