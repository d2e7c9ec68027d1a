//! mailbox-formats (work in progress)
