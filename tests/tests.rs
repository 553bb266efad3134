//! End-to-end tests of the `madoguchi` binary: one test binary, modules per
//! area, each test in its own temporary folder.
//!
//! Plain `cargo test` runs everything that needs nothing but Rust. The
//! tests under `system::` need what a developer's machine may lack —
//! Chromium and ChromeDriver, testssl.sh, root for a small tmpfs — and run
//! with the `system-tests` feature, which `./scripts/test` (and CI) turns on
//! after installing what they need.

mod admin_records;
mod api_doc;
mod archive;
mod audit;
mod backup;
mod cli;
mod closing;
mod crash;
mod damage;
mod failover;
mod insider;
mod insider_memory;
mod printer;
mod public_words;
mod push;
mod relay;
mod relay_certs;
mod relay_heads;
mod relay_storm;
mod relay_util;
mod reports;
mod server;
mod standby;
mod stats;
mod util;
#[cfg(feature = "system-tests")]
mod webdriver;
mod webpush;

/// Tests that need Chromium, testssl.sh or root (`--features system-tests`).
#[cfg(feature = "system-tests")]
mod system {
    mod admin_pages;
    mod browser;
    mod diskfull;
    mod displays;
    mod failover_disk;
    mod failover_pages;
    mod kiosk_focus;
    mod kiosk_health;
    mod layout_log;
    mod menus;
    mod notices;
    mod notices_buttons;
    mod office_clock;
    mod plain_words;
    mod plain_words_rt11;
    mod redirect;
    mod ruby;
    mod settings_tabs;
    mod staff_day;
    mod station_words;
    mod visitor_words;
}
