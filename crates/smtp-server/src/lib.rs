//! smtp-server (work in progress)
