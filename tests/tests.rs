//! End-to-end tests of the `madoguchi` binary: one test binary, modules per
//! area, each test in its own temporary folder.

mod api_doc;
mod archive;
mod backup;
mod browser;
mod cli;
mod crash;
mod diskfull;
mod displays;
mod insider;
mod printer;
mod push;
mod relay;
mod relay_util;
mod reports;
mod server;
mod standby;
mod stats;
mod util;
mod webdriver;
