//! # madoguchi-core
//!
//! The office core of Madoguchi (窓口): the office configuration, the queue
//! state machine (commands → events), the append-only event log, snapshots
//! in sled, wait estimates and simulated days. ARCHITECTURE.md at the root of
//! the repository is the map.
//!
//! The state machine on its own — time is an input, so this is exact:
//!
//! ```
//! use madoguchi_core::config::Config;
//! use madoguchi_core::model::{Command, Millis};
//! use madoguchi_core::state::State;
//!
//! let config = Config::embedded_default();
//! let mut state = State::new(&config);
//! let mut run = |at: i64, cmd: Command| {
//!     let events = state.decide(&config, Millis(at), &cmd).expect("accepted");
//!     for e in &events {
//!         state.apply(&config, Millis(at), e).expect("applies");
//!     }
//!     events
//! };
//! run(0, Command::OpenDay { date: "2026-11-26".parse().unwrap() });
//! run(1, Command::OpenCounter { counter: 10, staff: None });
//! let issued = run(2, Command::IssueTicket { category: "idou".into(), kiosk: None, request_id: None });
//! assert_eq!(issued[0].ticket(), Some(1001)); // 住民異動 numbers start at 1001
//! run(3, Command::CallNext { counter: 10 });
//! run(4, Command::Transfer { number: 1001, to: "koufu".into(), tags: vec![], note: None });
//! assert_eq!(state.waiting_in("koufu").collect::<Vec<_>>(), vec![1001]); // same number, next stage
//! ```
//!
//! With durability, [`engine::Engine`] wraps the same state machine: every
//! accepted command is synced to the event log before it is answered.

pub mod audit;
pub mod backup;
pub mod clock;
pub mod config;
pub mod engine;
pub mod log;
pub mod model;
pub mod refusal;
pub mod simulate;
pub mod state;
pub mod stats;
pub mod store;
