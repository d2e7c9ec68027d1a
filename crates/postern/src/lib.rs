//! postern library: config and wiring
