//! proto-imap (work in progress)
