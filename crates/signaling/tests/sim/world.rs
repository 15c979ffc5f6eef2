//! The simulated world: three node slots over one store and one in-process network, the
//! users' clients, and one step of a schedule applied to both the world and the model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chat_domain::{ChatPayload, GuestUser, Profile, Timestamp, UserId};
use chat_signaling::{ChatConfig, ChatError, Outgoing, SearchFilters};
use chat_storage::{ChatStore, InProcessNetwork, MemoryStore, StoreConfig};
use tokio::time::Instant;

use super::checks::Conditions;
use super::model::{Checked, Model, NODE_TIMEOUT, Sock};
use super::node::{Connect, Log, Node, Seen, SocketId};
use super::ops::{Op, Snapshot};

/// How many node slots the world has.
pub const NODES: usize = 3;

/// Counts of what a run did.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Steps that ran (not skipped).
    pub ops: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// Adds `other` to this tally.
    pub fn add(&mut self, other: &Tally) {
        self.ops += other.ops;
        for (kind, count) in &other.faults {
            *self.faults.entry(kind).or_default() += count;
        }
    }
}

/// Nodes, users and the model of one run.
pub struct World {
    store: Arc<MemoryStore>,
    network: InProcessNetwork,
    log: Arc<Log>,
    /// Per slot: the running node, or `None` while it is dead.
    nodes: Vec<Option<Arc<Node>>>,
    /// Per slot: how many times a node started in it.
    starts: Vec<u32>,
    paused: [bool; NODES],
    next_socket: SocketId,
    /// The model the checks judge against.
    pub model: Model,
    /// What this run did.
    pub tally: Tally,
}

impl World {
    /// Three fresh nodes over an empty store.
    pub fn new() -> Self {
        let store = Arc::new(MemoryStore::new(StoreConfig::default()));
        let network = InProcessNetwork::default();
        let log = Arc::new(Log::default());
        let nodes = (0..NODES)
            .map(|slot| Some(Node::start(format!("node-{slot}"), &store, &network, &log)))
            .collect();
        Self {
            store,
            network,
            log,
            nodes,
            starts: vec![1; NODES],
            paused: [false; NODES],
            next_socket: 1,
            model: Model::new(ChatConfig::default().reconnect_grace),
            tally: Tally::default(),
        }
    }

    /// What the generator may look at.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            next_user: self
                .model
                .users
                .keys()
                .next_back()
                .map_or(0, |last| last + 1),
            nodes: (0..NODES)
                .map(|slot| (self.nodes[slot].is_some(), self.paused[slot]))
                .collect(),
            ..Snapshot::default()
        };
        let now = Instant::now();
        for user in self.model.users.values() {
            for (slot, at) in &user.drops {
                if now < *at + self.model.grace + Duration::from_secs(1) {
                    snapshot.dropped_from.push((user.label, *slot));
                }
            }
            if user.ended.is_some() {
                snapshot.ended.push(user.label);
                continue;
            }
            let receipts = user
                .socket
                .map_or(0, |socket| self.log.receipts_of(socket.id).len());
            snapshot.users.push((
                user.label,
                user.socket.map(|socket| socket.slot),
                user.view.is_some(),
                receipts,
            ));
        }
        snapshot
    }

    fn node(&self, slot: usize) -> Option<Arc<Node>> {
        self.nodes.get(slot).cloned().flatten()
    }

    fn paused_any(&self) -> bool {
        self.paused.iter().any(|paused| *paused)
    }

    /// The live socket of `label` and its node, if any.
    fn socket_of(&self, label: usize) -> Option<(UserId, Sock, Arc<Node>)> {
        let user = self.model.users.get(&label)?;
        let socket = user.socket?;
        Some((user.id.clone(), socket, self.node(socket.slot)?))
    }

    /// Lets every task run until nothing moves, with paused time barely moving.
    pub async fn settle(&self) {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs `op`, lets the world settle and checks every invariant. Returns the line of
    /// the schedule (`None`: skipped, the world was not in the state the step needs).
    pub async fn step(
        &mut self,
        op: Op,
    ) -> Result<Option<String>, (String, super::model::Violation)> {
        let outcome = self.apply(op).await;
        let Some(outcome) = outcome else {
            return Ok(None);
        };
        let (said, checked) = match outcome {
            Ok(said) => (said, Ok(())),
            Err(violation) => (String::from("!"), Err(violation)),
        };
        self.tally.ops += 1;
        if let Some(kind) = op.fault() {
            *self.tally.faults.entry(kind).or_default() += 1;
        }
        self.settle().await;
        let absorbed = self.model.absorb(self.log.take());
        let conditions = Conditions {
            paused: self.paused_any(),
        };
        let result = match (checked, absorbed) {
            (Err(violation), _) | (Ok(()), Err(violation)) => Err(violation),
            (Ok(()), Ok(())) => self.model.check(&self.store, conditions).await,
        };
        let line = format!("{op} -> {said}");
        match result {
            Ok(()) => Ok(Some(line)),
            Err(violation) => Err((line, violation)),
        }
    }

    /// Runs one step; `None` when skipped, else what it answered (or the violation the
    /// answer itself showed).
    async fn apply(&mut self, op: Op) -> Option<Result<String, super::model::Violation>> {
        let paused = self.paused_any();
        let said = match op {
            Op::Create { user, via } => {
                if self.model.users.contains_key(&user) {
                    return None;
                }
                let node = self.node(via)?;
                let guest = GuestUser::new(Profile::default(), Timestamp::now());
                let created = node.create(&guest).await;
                self.model.created(user, guest.id.clone());
                format!("{created}")
            }
            Op::Connect { user, node: slot } => {
                let model = self.model.users.get(&user)?;
                if model.socket.is_some() {
                    return None;
                }
                let id = model.id.clone();
                return self.connect(user, &id, slot, false, paused).await;
            }
            Op::Takeover { user, node: slot } => {
                let (id, _, _) = self.socket_of(user)?;
                self.model.disrupted();
                return self.connect(user, &id, slot, true, paused).await;
            }
            Op::Disconnect { user } => {
                let (id, socket, node) = self.socket_of(user)?;
                node.activity(&id).await;
                let dropped = node.disconnect(&id, socket.id).await;
                self.model.dropped(user);
                self.model.disrupted();
                format!("{dropped}")
            }
            Op::Search { user } => {
                let (id, _, node) = self.socket_of(user)?;
                node.activity(&id).await;
                answer(node.chat.search(&id, SearchFilters::default()).await)
            }
            Op::Cancel { user } => {
                let (id, _, node) = self.socket_of(user)?;
                node.activity(&id).await;
                answer(node.chat.cancel(&id).await)
            }
            Op::Next { user } => {
                let (id, _, node) = self.socket_of(user)?;
                node.activity(&id).await;
                let next = node.chat.next(&id, SearchFilters::default()).await;
                if next.is_ok() {
                    self.model.left(user);
                }
                answer(next)
            }
            Op::Leave { user } => {
                let (id, _, node) = self.socket_of(user)?;
                node.activity(&id).await;
                answer(node.chat.leave(&id).await)
            }
            Op::Send { user } => {
                let (id, _, node) = self.socket_of(user)?;
                node.activity(&id).await;
                let payload = ChatPayload::from_json(&serde_json::json!({"content": "hi"}))
                    .expect("a valid text payload");
                match node.chat.send_message(&id, payload).await {
                    Ok(sent) => {
                        let line = format!("ok {}", sent.id);
                        if let Err(violation) = self.model.sent(user, sent.id, paused) {
                            return Some(Err(violation));
                        }
                        line
                    }
                    Err(error) => format!("err {}", code(&error)),
                }
            }
            Op::Ack {
                user,
                pick,
                by_event,
            } => {
                let (id, socket, node) = self.socket_of(user)?;
                let held = self.log.receipts_of(socket.id);
                let message = held.get(pick as usize % held.len().max(1))?.clone();
                node.activity(&id).await;
                let sent = if by_event {
                    node.chat.confirm_delivery(&id, &message)
                } else {
                    self.log
                        .take_receipt(socket.id, &message)
                        .is_some_and(chat_signaling::Receipt::confirm)
                };
                self.model.confirmed(&message, sent, paused);
                format!("{message} receipt sent: {sent}")
            }
            Op::Typing { user, on } => {
                let (id, _, node) = self.socket_of(user)?;
                node.activity(&id).await;
                let typed = node.chat.typing(&id, on);
                if typed.is_ok() {
                    self.model.typed(user);
                }
                answer(typed)
            }
            Op::Delete { user, via } => {
                let model = self.model.users.get(&user)?;
                if model.ended.is_some() {
                    return None;
                }
                let id = model.id.clone();
                let node = self.node(via)?;
                let deleted = node.delete(&id).await;
                self.model.ended(user, false);
                self.model.disrupted();
                format!("{deleted}")
            }
            Op::Expire { user } => {
                let model = self.model.users.get(&user)?;
                if model.ended.is_some() {
                    return None;
                }
                let id = model.id.clone();
                let expired = Node::expire(&self.store, &id).await;
                self.model.ended(user, true);
                self.model.disrupted();
                format!("{expired}")
            }
            Op::Advance { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                String::from("ok")
            }
            Op::Kill { node: slot } => {
                self.node(slot)?;
                // Messages held for it are lost with it.
                self.paused[slot] = false;
                let node = self.nodes.get_mut(slot)?.take()?;
                node.kill();
                drop(node);
                self.model.disrupted();
                String::from("ok")
            }
            Op::Restart { node: slot, new_id } => {
                if self.nodes.get(slot)?.is_some() {
                    return None;
                }
                self.starts[slot] += 1;
                let id = if new_id {
                    format!("node-{slot}.{}", self.starts[slot])
                } else {
                    format!("node-{slot}")
                };
                let node = Node::start(id.clone(), &self.store, &self.network, &self.log);
                self.nodes[slot] = Some(node);
                self.paused[slot] = false;
                self.model.disrupted();
                id
            }
            Op::Pause { node: slot } => {
                let node = self.node(slot)?;
                if self.paused[slot] {
                    return None;
                }
                node.tap.pause();
                self.paused[slot] = true;
                self.model.disrupted();
                String::from("ok")
            }
            Op::Resume { node: slot } => {
                if !*self.paused.get(slot)? {
                    return None;
                }
                let sent = self.resume(slot);
                format!("{sent} held messages let through")
            }
            Op::Quiesce => {
                let mut sent = 0;
                for slot in 0..NODES {
                    if self.paused[slot] {
                        sent += self.resume(slot);
                    }
                }
                // What the resume let through is judged at the time it arrived.
                self.settle().await;
                if let Err(violation) = self.model.absorb(self.log.take()) {
                    return Some(Err(violation));
                }
                tokio::time::sleep(self.model.grace + NODE_TIMEOUT + Duration::from_secs(3)).await;
                format!("{sent} held messages let through")
            }
        };
        Some(Ok(said))
    }

    fn resume(&mut self, slot: usize) -> usize {
        self.paused[slot] = false;
        self.model.disrupted();
        self.model.last_resume = Instant::now();
        self.node(slot).map_or(0, |node| node.tap.resume())
    }

    async fn connect(
        &mut self,
        label: usize,
        id: &UserId,
        slot: usize,
        takeover: bool,
        paused: bool,
    ) -> Option<Result<String, super::model::Violation>> {
        let node = self.node(slot)?;
        let socket = self.next_socket;
        self.next_socket += 1;
        let result = node.connect(id, socket).await;
        let said = match &result {
            Connect::Refused => String::from("refused"),
            Connect::Connected(None) => format!("s{socket}, no room"),
            Connect::Connected(Some(room)) => format!("s{socket}, in {room}"),
        };
        let partner = match &result {
            Connect::Connected(Some(_)) => self
                .store
                .room_of(id)
                .await
                .ok()
                .flatten()
                .and_then(|room| room.partner_of(id).map(|(partner, _)| partner.clone())),
            _ => None,
        };
        // A match:found handed to the new socket while it connected announces its room.
        let entries = self.log.take();
        let announced = match &result {
            Connect::Connected(Some(room)) => entries.iter().any(|entry| {
                entry.socket == socket
                    && matches!(&entry.seen, Seen::Event(Outgoing::Found { room_id, .. }) if room_id == room)
            }),
            _ => false,
        };
        let socket = Sock { id: socket, slot };
        let checked: Checked = self
            .model
            .connected(label, socket, &result, partner, takeover, paused, announced);
        let checked = checked.and_then(|()| self.model.absorb(entries));
        Some(checked.map(|()| said))
    }

    /// Stops every node (end of a run): resumes the gate, then shuts them down in order.
    pub async fn shutdown(&mut self) {
        for slot in 0..NODES {
            if self.paused[slot] {
                self.resume(slot);
            }
        }
        for node in self.nodes.iter().flatten() {
            node.shutdown().await;
        }
    }
}

fn answer<T>(result: Result<T, ChatError>) -> String {
    match result {
        Ok(_) => String::from("ok"),
        Err(error) => format!("err {}", code(&error)),
    }
}

fn code(error: &ChatError) -> &'static str {
    error.code().as_str()
}
