//! proto-smtp (work in progress)
