//! The push hub: topics ("guidance/idou", "counter/5", "board"), each with
//! its latest payload and a broadcast channel. A subscriber gets the latest
//! payload at once, then every new one; a slow subscriber that falls behind
//! skips to the newest (displays want the present, not the backlog).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

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

/// Where every publish is also handed, under the hub's lock (the relay's
/// writer loops, `crate::fanout`; issue 21).
pub struct Tap(TapFn);

/// What a tap does with a publish.
pub type TapFn = Box<dyn Fn(&Arc<Payload>) + Send + Sync>;

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

#[derive(Debug)]
pub struct Hub {
    topics: Mutex<HashMap<String, Topic>>,
    backlog: usize,
    tap: OnceLock<Tap>,
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
            tap: OnceLock::new(),
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

    /// Hands every later publish to `tap` as well, in publish order and
    /// under the same lock as [`Hub::with_latest`]; a hub has one tap (a
    /// second is ignored, false).
    pub fn set_tap(&self, tap: TapFn) -> bool {
        self.tap.set(Tap(tap)).is_ok()
    }

    /// Runs `f` with the topic's latest payload under the hub's lock: no
    /// publish comes between it and what `f` does (a writer loop's
    /// subscriber joins with the payload it has, then gets every newer one).
    pub fn with_latest<T>(&self, topic: &str, f: impl FnOnce(Option<Arc<Payload>>) -> T) -> T {
        self.with_topic(topic, |t| f(t.last.clone()))
    }

    /// Publishes a new version of `topic`; returns how many broadcast
    /// subscribers it reached (not counting the tap's).
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
            if let Some(tap) = self.tap.get() {
                (tap.0)(&p);
            }
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
