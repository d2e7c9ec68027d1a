//! Where password hashes are checked: a small pool of dedicated threads (argon2id needs
//! 19 MiB per check; on the general blocking pool every thread ends up with its own allocator
//! arena full of freed 19 MiB buffers, hundreds of MiB under a burst of logins), and a
//! short-lived cache of successful checks, like Dovecot's auth_cache, so a client that logs in
//! again and again does not pay 20+ ms of CPU each time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::password::verify_password;

/// Threads checking hashes; more would only queue on the CPUs anyway.
const THREADS: usize = 2;
/// How long a successful check is remembered.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries kept at most (a full cache is cleared, not grown).
const CACHE_MAX: usize = 10_000;

type Job = (String, String, oneshot::Sender<bool>);

pub(crate) struct Verifier {
    jobs: mpsc::Sender<Job>,
    /// Per-process secret mixed into cache keys, so the cache holds nothing reusable.
    secret: [u8; 32],
    /// address -> (digest of secret, stored hash and password, expiry).
    cache: Mutex<HashMap<String, ([u8; 32], Instant)>>,
}

impl Verifier {
    pub(crate) fn new() -> Verifier {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let _ = std::thread::Builder::new()
                .name(format!("auth-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok((password, hash, reply)) = job else {
                            return;
                        };
                        let _ = reply.send(verify_password(&password, &hash));
                    }
                });
        }
        let mut secret = [0u8; 32];
        let seed = format!(
            "{:?}{:?}{}",
            Instant::now(),
            std::thread::current().id(),
            std::process::id()
        );
        secret.copy_from_slice(&Sha256::digest(seed.as_bytes()));
        // Not a CSPRNG: the secret only keeps cache keys from being precomputable per password.
        let extra =
            Sha256::digest(format!("{:p}{:?}", &secret, std::time::SystemTime::now()).as_bytes());
        for (a, b) in secret.iter_mut().zip(extra.iter()) {
            *a ^= b;
        }
        Verifier {
            jobs: tx,
            secret,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn key(&self, stored_hash: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(stored_hash.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `password` matches `stored_hash`. A changed password changes the stored hash,
    /// so a cached success never outlives it.
    pub(crate) async fn verify(
        &self,
        address: &str,
        password: &str,
        stored_hash: &str,
        cacheable: bool,
    ) -> Option<bool> {
        let key = self.key(stored_hash, password);
        if cacheable {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((k, until)) = cache.get(address)
                && *k == key
                && *until > Instant::now()
            {
                return Some(true);
            }
        }
        let (reply, rx) = oneshot::channel();
        self.jobs
            .send((password.to_string(), stored_hash.to_string(), reply))
            .ok()?;
        let ok = rx.await.ok()?;
        if ok && cacheable {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(address.to_string(), (key, Instant::now() + CACHE_TTL));
        }
        Some(ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caches_successes_only_for_the_same_stored_hash() {
        let mut v = Verifier::new();
        let h1 = crate::hash_password("pw1").unwrap();
        assert_eq!(v.verify("a@x", "pw1", &h1, true).await, Some(true));
        // With the hashing threads out of reach, only the cache can answer (a time limit
        // instead fails whenever a loaded machine holds this thread up).
        let threads = std::mem::replace(&mut v.jobs, mpsc::channel().0);
        assert_eq!(
            v.verify("a@x", "pw1", &h1, true).await,
            Some(true),
            "second check comes from the cache"
        );
        assert_eq!(v.verify("a@x", "pw1", &h1, false).await, None);
        v.jobs = threads;
        assert_eq!(v.verify("a@x", "wrong", &h1, true).await, Some(false));
        // password changed: the old password no longer works, cache or not
        let h2 = crate::hash_password("pw2").unwrap();
        assert_eq!(v.verify("a@x", "pw1", &h2, true).await, Some(false));
        assert_eq!(v.verify("a@x", "pw2", &h2, true).await, Some(true));
    }
}
