//! Password hashing with argon2id (the `argon2` crate's defaults: m=19 MiB, t=2, p=1), stored as
//! PHC strings so parameters can be raised later without breaking old hashes.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes a password with a fresh random salt; returns the PHC string (`$argon2id$v=19$...`).
pub fn hash_password(password: &str) -> Result<String, crate::AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| crate::AuthError::Internal(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a random password, checked against when the user does not exist.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("postern dummy password for unknown users").unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret pässword").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("s3cret pässword", &h));
        assert!(!verify_password("s3cret password", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(h, hash_password("s3cret pässword").unwrap(), "salts differ");
    }
}
