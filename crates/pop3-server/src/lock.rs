//! One POP3 session per maildrop (RFC 1939 8: the server locks the maildrop at login).
//!
//! The lock lives in this process: in the embedded setup one process serves the store. A
//! store shared by several nodes needs the lock in the store instead (see ARCHITECTURE.md).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use store::AccountId;

/// The accounts whose maildrop a POP3 session holds. Cheap to clone; share one between the
/// `pop3` and `pop3s` listeners.
#[derive(Clone, Default)]
pub struct MaildropLocks(Arc<Mutex<HashSet<AccountId>>>);

impl MaildropLocks {
    /// No maildrop locked.
    pub fn new() -> MaildropLocks {
        MaildropLocks::default()
    }

    /// Locks `account`'s maildrop; `None` while another session holds it. The lock is released
    /// when the guard is dropped, however the session ends.
    pub(crate) fn try_lock(&self, account: AccountId) -> Option<LockGuard> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(account).then(|| LockGuard {
            locks: self.clone(),
            account,
        })
    }
}

/// A held maildrop lock.
pub(crate) struct LockGuard {
    locks: MaildropLocks,
    account: AccountId,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.locks
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_account_until_dropped() {
        let locks = MaildropLocks::new();
        let a = locks.try_lock(AccountId(1)).unwrap();
        assert!(locks.try_lock(AccountId(1)).is_none());
        let b = locks.clone().try_lock(AccountId(2));
        assert!(b.is_some());
        drop(a);
        assert!(locks.try_lock(AccountId(1)).is_some());
    }
}
