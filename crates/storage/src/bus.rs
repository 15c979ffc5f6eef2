//! The bus between nodes: each node subscribes to its own Redis pub/sub channel, and others
//! publish to it (through [`crate::ChatStore::publish`]) what its users must receive.

use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, ClientLike, Config, EventInterface, PubsubInterface, ReconnectPolicy,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::StoreResult;

/// How long start-up waits for the first subscription while Redis answers.
const FIRST_SUBSCRIBE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How many bus messages may wait for the node to handle them.
const BACKLOG: usize = 65_536;

/// A node's subscription; dropping it unsubscribes and stops its tasks.
pub struct BusSubscription {
    client: SubscriberClient,
    tasks: Vec<JoinHandle<()>>,
}

impl BusSubscription {
    /// Subscribes to `channel` on the Redis at `url`; messages arrive on the returned
    /// receiver. The subscription survives reconnections (it is renewed after each).
    pub async fn subscribe(
        url: &str,
        channel: String,
    ) -> StoreResult<(Self, mpsc::Receiver<String>)> {
        let mut config = Config::from_url(url)?;
        config.fail_fast = false;
        let client = Builder::from_config(config)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_subscriber_client()?;
        // The connection task lives as long as the client.
        drop(client.connect());
        let (sender, receiver) = mpsc::channel(BACKLOG);
        let mut messages = client.message_rx();
        let forward = tokio::spawn(async move {
            while let Ok(message) = messages.recv().await {
                let Some(text) = message.value.as_string() else {
                    continue;
                };
                if sender.send(text).await.is_err() {
                    return;
                }
            }
        });
        let renew = client.manage_subscriptions();
        let mut tasks = vec![forward, renew];
        // A node must not serve before it can receive: wait for the subscription while Redis
        // answers; if it does not (it is down at start), keep trying in the background.
        let first =
            tokio::time::timeout(FIRST_SUBSCRIBE_WAIT, client.subscribe(channel.clone())).await;
        if !matches!(first, Ok(Ok(()))) {
            tracing::warn!("bus subscription not confirmed yet; retrying in the background");
            let subscriber = client.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if subscriber.subscribe(channel.clone()).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }));
        }
        Ok((Self { client, tasks }, receiver))
    }
}

impl Drop for BusSubscription {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let client = self.client.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}
