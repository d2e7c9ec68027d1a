//! The `postern` binary's library half: configuration, wiring of the store, authentication and
//! protocol listeners, and the admin commands. The only crate that names every protocol and
//! the only one that reads the configuration file.
//!
//! # Layout
//! * `config`: [`config::Config`], the TOML file.
//! * `server`: [`server::start`], binding listeners and running until shutdown.
//! * `admin`: the `domain`, `user`, `alias`, `export`, `import`, `queue` and `stats` commands.

pub mod admin;
pub mod config;
pub mod server;
