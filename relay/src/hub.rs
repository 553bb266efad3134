//! The push hub: topics ("guidance/idou", "counter/5", "board"), each with
//! its latest payload and a broadcast channel. A subscriber gets the latest
//! payload at once, then every new one; a slow subscriber that falls behind
//! skips to the newest (displays want the present, not the backlog).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::broadcast;

/// One published version of a topic (already-serialised JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub topic: String,
    /// Increases with every publish of the topic.
    pub version: u64,
    pub body: Arc<str>,
    /// The body as one WebSocket text frame, encoded once here and shared
    /// by every subscriber's write (issue 21).
    pub frame: Bytes,
}

#[derive(Debug)]
struct Topic {
    last: Option<Arc<Payload>>,
    tx: broadcast::Sender<Arc<Payload>>,
}

/// How many payloads a subscriber may fall behind before skipping ahead.
const BACKLOG: usize = 16;

#[derive(Debug)]
pub struct Hub {
    topics: Mutex<HashMap<String, Topic>>,
    backlog: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::with_backlog(BACKLOG)
    }
}

/// A subscription: the latest payload (if any) and the stream of new ones.
#[derive(Debug)]
pub struct Subscription {
    pub current: Option<Arc<Payload>>,
    pub updates: broadcast::Receiver<Arc<Payload>>,
}

impl Hub {
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A hub whose subscribers may fall `backlog` payloads behind.
    pub fn with_backlog(backlog: usize) -> Hub {
        Hub {
            topics: Mutex::new(HashMap::new()),
            backlog: backlog.max(1),
        }
    }

    fn with_topic<T>(&self, topic: &str, f: impl FnOnce(&mut Topic) -> T) -> T {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let t = topics.entry(topic.to_string()).or_insert_with(|| Topic {
            last: None,
            tx: broadcast::channel(self.backlog).0,
        });
        f(t)
    }

    /// Publishes a new version of `topic`; returns how many subscribers it
    /// reached.
    pub fn publish(&self, topic: &str, body: impl Into<Arc<str>>) -> usize {
        let body = body.into();
        self.with_topic(topic, |t| {
            let version = t.last.as_ref().map_or(1, |p| p.version + 1);
            let p = Arc::new(Payload {
                topic: topic.to_string(),
                version,
                frame: crate::ws::text_frame(&body),
                body,
            });
            t.last = Some(p.clone());
            t.tx.send(p).unwrap_or(0)
        })
    }

    pub fn subscribe(&self, topic: &str) -> Subscription {
        self.with_topic(topic, |t| Subscription {
            current: t.last.clone(),
            updates: t.tx.subscribe(),
        })
    }

    /// The latest payload of a topic.
    pub fn latest(&self, topic: &str) -> Option<Arc<Payload>> {
        self.with_topic(topic, |t| t.last.clone())
    }

    /// Subscribers of a topic now.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.with_topic(topic, |t| t.tx.receiver_count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_subscriber_gets_the_latest_then_every_new_payload() {
        let hub = Hub::new();
        hub.publish("guidance/idou", "{\"v\":1}");
        let mut sub = hub.subscribe("guidance/idou");
        assert_eq!(sub.current.as_ref().map(|p| &*p.body), Some("{\"v\":1}"));
        assert_eq!(hub.publish("guidance/idou", "{\"v\":2}"), 1);
        assert_eq!(
            hub.publish("guidance/koseki", "{}"),
            0,
            "other topics are separate"
        );
        let p = sub.updates.recv().await.expect("update");
        assert_eq!((p.version, &*p.body), (2, "{\"v\":2}"));
    }

    #[tokio::test]
    async fn a_slow_subscriber_skips_to_the_newest() {
        let hub = Hub::new();
        let mut sub = hub.subscribe("board");
        for i in 0..(BACKLOG as u64 + 10) {
            hub.publish("board", format!("{i}"));
        }
        let first = sub.updates.recv().await;
        assert!(matches!(first, Err(broadcast::error::RecvError::Lagged(_))));
        let mut last = None;
        while let Ok(p) = sub.updates.try_recv() {
            last = Some(p);
        }
        assert_eq!(last.map(|p| p.version), Some(BACKLOG as u64 + 10));
    }
}
