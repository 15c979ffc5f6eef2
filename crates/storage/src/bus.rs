//! The bus between nodes over Redis pub/sub: each node subscribes to its own channel, and
//! others publish to it what its users must receive (sharded pub/sub on a Redis Cluster).
//! [`crate::redis::RedisCluster`] drives it.
//!
//! Two tasks serve a subscription, both stopped through one cancellation token:
//! - the forwarder moves messages from `fred`'s broadcast channel into the node's bounded
//!   [`Inbox`]. When the node reads too slowly the broadcast overflows: the forwarder logs how
//!   many messages were lost, counts them ([`RedisCluster::bus_lagged`], and the store's
//!   [`RedisObserver::bus_lagged`]) and goes on receiving.
//!   If the broadcast closes under it, it takes a new receiver and asks for a resubscription;
//! - the supervisor subscribes (retrying while Redis is away), subscribes again after every
//!   reconnection, and on shutdown unsubscribes and closes the connection.
//!
//! [`RedisCluster::bus_lagged`]: crate::redis::RedisCluster::bus_lagged

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fred::clients::SubscriberClient;
use fred::prelude::{Builder, ClientLike, EventInterface, PubsubInterface, ReconnectPolicy};
use fred::types::Message;
use tokio::sync::broadcast::Receiver as BroadcastReceiver;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::StoreResult;
use crate::cluster::Inbox;
use crate::redis::{RedisObserver, RedisTarget, RedisTopology};

/// How long start-up waits for the first subscription while Redis answers.
const FIRST_SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);
/// The pause between two failed subscription attempts.
const SUBSCRIBE_RETRY: Duration = Duration::from_millis(500);
/// How long shutdown waits for Redis to confirm `UNSUBSCRIBE` and then `QUIT`.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// Sizes of the buffers between Redis and the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusOptions {
    /// How many messages may wait in the [`Inbox`] for the node to handle them.
    pub inbox_backlog: usize,
    /// How many messages `fred`'s broadcast channel holds before the forwarder lags.
    pub broadcast_capacity: usize,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            inbox_backlog: 65_536,
            broadcast_capacity: 4_096,
        }
    }
}

/// A node's subscription to its channel (see the module docs).
pub(crate) struct Subscription {
    client: SubscriberClient,
    state: Arc<State>,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// What the subscription's tasks report.
#[derive(Debug, Default)]
struct State {
    subscribed: AtomicBool,
    lagged: AtomicU64,
}

impl Subscription {
    /// Subscribes to `channel` on the Redis at `url`. Waits a moment for the subscription to
    /// be confirmed; if Redis does not answer (it is down at start) it keeps trying in the
    /// background. Fails only on a URL it cannot read.
    pub(crate) async fn start(
        target: &RedisTarget,
        channel: String,
        options: BusOptions,
        observer: Option<Arc<dyn RedisObserver>>,
    ) -> StoreResult<(Self, Inbox)> {
        let mut config = target.config()?;
        let channel = Channel {
            name: channel,
            sharded: target.topology() == RedisTopology::Cluster,
        };
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .with_performance_config(|performance| {
                performance.broadcast_channel_capacity = options.broadcast_capacity.max(1);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_subscriber_client()
            .map_err(crate::error::redis)?;
        // Receivers taken before connecting, so that no message and no reconnection is missed.
        let messages = client.message_rx();
        let reconnections = client.reconnect_rx();
        // fred's connection task lives until `quit`, which the supervisor sends on shutdown.
        drop(client.connect());
        let (sender, inbox) = mpsc::channel(options.inbox_backlog.max(1));
        let state = Arc::new(State::default());
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let resubscribe = Arc::new(Notify::new());
        tasks.spawn(forward(Forwarder {
            client: client.clone(),
            messages,
            inbox: sender,
            state: Arc::clone(&state),
            resubscribe: Arc::clone(&resubscribe),
            cancel: cancel.clone(),
            observer,
        }));
        // A node must not serve before it can receive: wait for the subscription while Redis
        // answers; if it does not, the supervisor keeps trying in the background.
        let first = tokio::time::timeout(FIRST_SUBSCRIBE_WAIT, channel.subscribe(&client)).await;
        let subscribed = matches!(first, Ok(Ok(())));
        if subscribed {
            state.subscribed.store(true, Ordering::Release);
        } else {
            tracing::warn!("bus subscription not confirmed yet; retrying in the background");
        }
        tasks.spawn(supervise(Supervisor {
            client: client.clone(),
            channel,
            reconnections,
            state: Arc::clone(&state),
            resubscribe,
            cancel: cancel.clone(),
            subscribed,
        }));
        tasks.close();
        Ok((
            Self {
                client,
                state,
                cancel,
                tasks,
            },
            inbox,
        ))
    }

    /// Whether the subscription is confirmed and its connection up.
    pub(crate) fn is_up(&self) -> bool {
        self.state.subscribed.load(Ordering::Acquire) && self.client.is_connected()
    }

    /// How many messages were lost so far because the node read too slowly.
    pub(crate) fn lagged(&self) -> u64 {
        self.state.lagged.load(Ordering::Relaxed)
    }

    /// Stops the tasks (which unsubscribe and close the connection) and waits for them.
    pub(crate) async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }
}

impl Drop for Subscription {
    /// Tells the tasks to stop; they unsubscribe and close the connection on their own.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

struct Forwarder {
    client: SubscriberClient,
    messages: BroadcastReceiver<Message>,
    inbox: mpsc::Sender<String>,
    state: Arc<State>,
    resubscribe: Arc<Notify>,
    cancel: CancellationToken,
    observer: Option<Arc<dyn RedisObserver>>,
}

async fn forward(mut forwarder: Forwarder) {
    loop {
        let received = tokio::select! {
            biased;
            () = forwarder.cancel.cancelled() => return,
            received = forwarder.messages.recv() => received,
        };
        match received {
            Ok(message) => {
                let Some(text) = message.value.as_string() else {
                    continue;
                };
                tokio::select! {
                    biased;
                    () = forwarder.cancel.cancelled() => return,
                    sent = forwarder.inbox.send(text) => if sent.is_err() {
                        // The node dropped its inbox: nobody listens any more.
                        forwarder.state.subscribed.store(false, Ordering::Release);
                        return;
                    },
                }
            }
            Err(RecvError::Lagged(missed)) => {
                let total = forwarder.state.lagged.fetch_add(missed, Ordering::Relaxed) + missed;
                if let Some(observer) = &forwarder.observer {
                    observer.bus_lagged(missed);
                }
                tracing::warn!(
                    missed,
                    total,
                    "bus subscription lagged: the node read too slowly and messages were lost"
                );
            }
            Err(RecvError::Closed) => {
                if forwarder.cancel.is_cancelled() {
                    return;
                }
                tracing::warn!("bus message stream closed; resubscribing");
                forwarder.messages = forwarder.client.message_rx();
                forwarder.resubscribe.notify_one();
            }
        }
    }
}

/// The node's channel: classic pub/sub, or sharded (`SSUBSCRIBE`: on a Redis Cluster only the
/// shard owning the channel's slot carries its messages).
#[derive(Debug, Clone)]
struct Channel {
    name: String,
    sharded: bool,
}

impl Channel {
    async fn subscribe(&self, client: &SubscriberClient) -> Result<(), fred::error::Error> {
        if self.sharded {
            client.ssubscribe(self.name.clone()).await
        } else {
            client.subscribe(self.name.clone()).await
        }
    }

    async fn unsubscribe(&self, client: &SubscriberClient) -> Result<(), fred::error::Error> {
        if self.sharded {
            client.sunsubscribe(self.name.clone()).await
        } else {
            client.unsubscribe(self.name.clone()).await
        }
    }
}

struct Supervisor {
    client: SubscriberClient,
    channel: Channel,
    reconnections: BroadcastReceiver<fred::types::config::Server>,
    state: Arc<State>,
    resubscribe: Arc<Notify>,
    cancel: CancellationToken,
    subscribed: bool,
}

async fn supervise(mut supervisor: Supervisor) {
    let state = Arc::clone(&supervisor.state);
    'serve: loop {
        while !supervisor.subscribed {
            let attempt = tokio::select! {
                biased;
                () = supervisor.cancel.cancelled() => break 'serve,
                attempt = supervisor.channel.subscribe(&supervisor.client) => attempt,
            };
            match attempt {
                Ok(()) => {
                    supervisor.subscribed = true;
                    state.subscribed.store(true, Ordering::Release);
                    tracing::info!("bus subscription confirmed");
                }
                Err(error) => {
                    tracing::debug!(%error, "bus subscription failed; retrying");
                    tokio::select! {
                        biased;
                        () = supervisor.cancel.cancelled() => break 'serve,
                        () = tokio::time::sleep(SUBSCRIBE_RETRY) => {}
                    }
                }
            }
        }
        tokio::select! {
            biased;
            () = supervisor.cancel.cancelled() => break 'serve,
            event = supervisor.reconnections.recv() => {
                if matches!(event, Err(RecvError::Closed)) {
                    supervisor.reconnections = supervisor.client.reconnect_rx();
                }
            }
            () = supervisor.resubscribe.notified() => {}
        }
        // A new connection (or message stream) holds no subscription until it is renewed.
        state.subscribed.store(false, Ordering::Release);
        supervisor.subscribed = false;
    }
    state.subscribed.store(false, Ordering::Release);
    let client = &supervisor.client;
    let _ = tokio::time::timeout(GOODBYE_WAIT, supervisor.channel.unsubscribe(client)).await;
    let _ = tokio::time::timeout(GOODBYE_WAIT, client.quit()).await;
}
