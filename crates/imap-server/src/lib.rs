//! imap-server (work in progress)
