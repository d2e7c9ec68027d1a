//! message (work in progress)
