//! Credentials: argon2id password hashing, SASL PLAIN/LOGIN decoding, failed-login rate
//! limiting, and [`Authenticator`], which ties them to the store for every protocol.
//!
//! # Layout
//! * `password`: [`hash_password`] / [`verify_password`] (argon2id, PHC strings).
//! * `sasl`: decoding of RFC 4616 PLAIN and the LOGIN mechanism's steps.
//! * `limiter`: [`FailureLimiter`], per-client-IP lockout after repeated failures.
#![deny(missing_docs)]

mod limiter;
mod password;
pub mod sasl;
mod verifier;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use limiter::FailureLimiter;
pub use password::{hash_password, verify_password};

use store::{AccountId, Store};

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong user name or password (deliberately not saying which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Too many recent failures from this client; try again after the given time.
    #[error("too many failed attempts; retry in {} s", .0.as_secs())]
    RateLimited(Duration),
    /// Malformed SASL data.
    #[error("malformed authentication data: {0}")]
    Malformed(&'static str),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Hashing failed (bad stored hash, task failure).
    #[error("password check failed: {0}")]
    Internal(String),
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The account.
    pub account: AccountId,
    /// Its canonical (lower-case) address.
    pub address: String,
}

/// Checks user names and passwords against the store, with rate limiting. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    limiter: Arc<FailureLimiter>,
    verifier: Arc<verifier::Verifier>,
}

impl Authenticator {
    /// Creates an authenticator sharing one limiter across all protocols.
    pub fn new(store: Store, limiter: FailureLimiter) -> Authenticator {
        Authenticator {
            store,
            limiter: Arc::new(limiter),
            verifier: Arc::new(verifier::Verifier::new()),
        }
    }

    /// Verifies `username` (an address, any case) and `password` for a client at `ip`.
    /// Failures are counted per IP; while locked out, even correct passwords are refused.
    pub async fn authenticate(
        &self,
        ip: IpAddr,
        username: &str,
        password: &str,
    ) -> Result<Identity, AuthError> {
        self.limiter.check(ip).map_err(AuthError::RateLimited)?;
        let address = store::normalize_address(username);
        let creds = self.store.credentials(&address).await?;
        // Unknown users still pay for a hash check, so timing does not reveal which accounts exist.
        let (hash, identity) = match creds {
            Some(c) => (
                c.password_hash,
                Some(Identity {
                    account: c.id,
                    address: c.address,
                }),
            ),
            None => (password::dummy_hash().to_string(), None),
        };
        let ok = self
            .verifier
            .verify(&address, password, &hash, identity.is_some())
            .await
            .ok_or_else(|| AuthError::Internal("password checker unavailable".into()))?;
        match (ok, identity) {
            (true, Some(identity)) => {
                self.limiter.success(ip);
                Ok(identity)
            }
            _ => {
                self.limiter.failure(ip);
                Err(AuthError::InvalidCredentials)
            }
        }
    }
}
