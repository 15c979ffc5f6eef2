//! This node among others: users claimed and released in the directory, and the inbox of
//! events and notices other nodes publish to this one. Without a cluster each is a no-op.

use std::sync::Arc;

use chat_domain::UserId;
use chat_storage::{BusHealth, Inbox};

use super::ChatService;
use crate::cluster::BusMessage;

impl ChatService {
    /// This node's id in the cluster (`None` on a single node).
    pub fn node_id(&self) -> Option<&str> {
        self.inner
            .node
            .as_ref()
            .map(|node| node.cluster().node_id())
    }

    /// Whether this node's bus subscription is live (`None` on a single node).
    pub fn bus_health(&self) -> Option<BusHealth> {
        self.inner
            .node
            .as_ref()
            .map(|node| node.cluster().bus_health())
    }

    /// `user` connected on this node: a socket of theirs on another node is replaced, and
    /// this node becomes the one their events go to. Call it before
    /// [`ChatService::user_connected`].
    pub async fn claim_user(&self, user: &UserId) {
        if let Some(node) = &self.inner.node {
            node.claim(user).await;
        }
    }

    /// `user`'s socket on this node is gone (not if another node took them over since).
    pub async fn release_user(&self, user: &UserId) {
        if let Some(node) = &self.inner.node {
            node.release(user).await;
        }
    }

    /// Serves this node's inbox on the service's tasks until shutdown or the inbox closes.
    pub(super) fn serve_inbox(&self, mut inbox: Inbox) {
        let weak = Arc::downgrade(&self.inner);
        let shutdown = self.inner.shutdown.clone();
        self.inner.tasks.spawn(async move {
            loop {
                let text = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    text = inbox.recv() => text,
                };
                let (Some(text), Some(inner)) = (text, weak.upgrade()) else {
                    return;
                };
                ChatService { inner }.handle_bus_message(&text);
            }
        });
    }

    fn handle_bus_message(&self, text: &str) {
        for message in BusMessage::decode(text).unwrap_or_default() {
            match message {
                BusMessage::Event { to, event } => self.receive(&to, event),
                BusMessage::Replaced { user } => {
                    self.inner.delivery.replaced_elsewhere(&user);
                    self.forget_local(&user);
                }
            }
        }
    }
}
