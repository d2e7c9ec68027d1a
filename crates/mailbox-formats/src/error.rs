//! The crate-wide error type.

use std::path::PathBuf;

/// Errors returned by the mbox and Maildir readers.
///
/// Every variant names the file or directory it concerns. For an
/// [`MboxReader`](crate::MboxReader) built over an arbitrary stream the path is
/// whatever was given to [`MboxReader::with_path`](crate::MboxReader::with_path)
/// (`"(mbox stream)"` by default).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The input does not start with a `From ` separator line.
    #[error("not an mbox: {} does not start with a \"From \" line", path.display())]
    NotMbox {
        /// The offending file.
        path: PathBuf,
    },
    /// An mbox message is larger than the configured maximum; the reader has
    /// skipped it and will continue with the next message.
    #[error(
        "message {index} in {} is larger than the maximum of {max} bytes; skipped",
        path.display()
    )]
    MessageTooLarge {
        /// The mbox file.
        path: PathBuf,
        /// 0-based position of the message in the file.
        index: usize,
        /// The configured maximum size in bytes.
        max: usize,
    },
    /// A Maildir message file is larger than the allowed maximum (after
    /// conversion to CRLF line endings).
    #[error(
        "message file {} is {size} bytes with CRLF line endings, over the maximum of {max}",
        path.display()
    )]
    FileTooLarge {
        /// The message file.
        path: PathBuf,
        /// Its size in bytes (as far as it was measured).
        size: u64,
        /// The maximum size in bytes.
        max: usize,
    },
    /// The directory is neither a Maildir nor a mail home containing one.
    #[error(
        "not a Maildir: {} has no cur/ or new/ (and no Maildir/ subdirectory that has)",
        path.display()
    )]
    NotMaildir {
        /// The directory that was given.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
