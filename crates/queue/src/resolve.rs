//! Recipient resolution. Rules, in order, for an address in a hosted domain:
//! 1. Local parts are case-insensitive: the address is lower-cased.
//! 2. Aliases on the exact address win over an account of the same name (Postfix
//!    `virtual_alias_maps` semantics); an alias pointing back at its own account keeps a copy.
//! 3. Otherwise the account with that address.
//! 4. Otherwise, for `user+tag@domain`, the same rules for `user@domain`.
//! 5. Otherwise the domain's catch-all alias `@domain`.
//!
//! Alias targets in hosted domains are resolved again (up to [`MAX_DEPTH`] levels, loops cut);
//! targets elsewhere become remote recipients (forwarding).

use std::collections::{BTreeMap, BTreeSet};

use store::AccountId;

use crate::{Deliverer, QueueError};

/// Alias chains longer than this are cut (and loops are detected before that).
const MAX_DEPTH: usize = 8;

/// Where one recipient's copy goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// An account's INBOX.
    Local {
        /// The account.
        account: AccountId,
        /// Its address.
        address: String,
    },
    /// A remote address, via the outbound queue.
    Remote(String),
}

/// What a recipient address resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Deliver to these (deduplicated, never empty).
    Deliver(Vec<Target>),
    /// A hosted domain, but no such user (RCPT gets 550 5.1.1).
    UnknownUser,
    /// Not a hosted domain.
    NotLocal,
}

impl Deliverer {
    /// Resolves one recipient address.
    pub async fn resolve(&self, address: &str) -> Result<Resolution, QueueError> {
        let address = store::normalize_address(address);
        let domain = store::domain_of(&address);
        if domain.is_empty() || !self.store.is_local_domain(domain).await? {
            return Ok(Resolution::NotLocal);
        }
        let mut targets = BTreeSet::new();
        let mut seen = BTreeMap::new();
        self.expand(&address, 0, &mut seen, &mut targets).await?;
        Ok(if targets.is_empty() {
            Resolution::UnknownUser
        } else {
            Resolution::Deliver(targets.into_iter().collect())
        })
    }

    /// The address `<Postmaster>` (RFC 5321 4.5.1: no domain, must be accepted) stands for:
    /// postmaster at the server's host name if that delivers, else at the first hosted domain
    /// where it does, else at the first hosted domain (the RCPT then gets 550, not a relay
    /// refusal).
    pub async fn postmaster(&self, hostname: &str) -> Result<String, QueueError> {
        let mut domains = vec![store::normalize_address(hostname)];
        domains.extend(self.store.list_domains().await?);
        let mut hosted = None;
        for d in &domains {
            let address = format!("postmaster@{d}");
            match self.resolve(&address).await? {
                Resolution::Deliver(_) => return Ok(address),
                Resolution::UnknownUser => hosted = hosted.or(Some(address)),
                Resolution::NotLocal => {}
            }
        }
        Ok(hosted.unwrap_or_else(|| format!("postmaster@{}", domains[0])))
    }

    /// Adds the targets of one hosted address; returns whether it resolved to anything.
    /// `seen` holds the addresses expanded so far: `None` while on the chain being expanded,
    /// then whether they resolved.
    async fn expand(
        &self,
        address: &str,
        depth: usize,
        seen: &mut BTreeMap<String, Option<bool>>,
        out: &mut BTreeSet<Target>,
    ) -> Result<bool, QueueError> {
        match seen.get(address) {
            // Reached before through another alias: its targets are in `out` already, and an
            // alias that leads to it has resolved (its own account gets no copy).
            Some(Some(resolved)) => return Ok(*resolved),
            // A loop: cut here.
            Some(None) => return Ok(false),
            None if depth > MAX_DEPTH => return Ok(false),
            None => {}
        }
        seen.insert(address.to_string(), None);
        // The address itself, its `+tag`-less form, then the catch-all.
        let mut candidates = vec![address.to_string()];
        candidates.extend(store::untagged(address));
        candidates.push(format!("@{}", store::domain_of(address)));
        let mut resolved = false;
        for candidate in candidates {
            let found = self.store.lookup_address(&candidate).await?;
            for stored in &found.alias_targets {
                let target = store::normalize_address(stored);
                if Some(&target) == Some(&candidate) || target == address {
                    // An alias onto itself keeps a copy in its own account.
                    if let Some(account) = found.account {
                        out.insert(Target::Local {
                            account,
                            address: candidate.clone(),
                        });
                        resolved = true;
                    }
                    continue;
                }
                let tdomain = store::domain_of(&target);
                if self.store.is_local_domain(tdomain).await? {
                    resolved |= Box::pin(self.expand(&target, depth + 1, seen, out)).await?;
                } else {
                    out.insert(Target::Remote(store::remote_address(stored)));
                    resolved = true;
                }
            }
            if !resolved && let Some(account) = found.account {
                out.insert(Target::Local {
                    account,
                    address: candidate.clone(),
                });
                resolved = true;
            }
            if resolved {
                break;
            }
        }
        seen.insert(address.to_string(), Some(resolved));
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Store;

    async fn setup() -> (tempfile::TempDir, Deliverer, AccountId, AccountId) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_embedded(dir.path()).unwrap();
        s.add_domain("naver.test").await.unwrap();
        s.add_domain("other.test").await.unwrap();
        let lee = s.add_account("lee@naver.test", "h").await.unwrap();
        let kim = s.add_account("kim@naver.test", "h").await.unwrap();
        s.add_alias("sales@naver.test", "lee@naver.test")
            .await
            .unwrap();
        s.add_alias("sales@naver.test", "kim@naver.test")
            .await
            .unwrap();
        s.add_alias("fwd@naver.test", "someone@elsewhere.test")
            .await
            .unwrap();
        s.add_alias("loop1@naver.test", "loop2@naver.test")
            .await
            .unwrap();
        s.add_alias("loop2@naver.test", "loop1@naver.test")
            .await
            .unwrap();
        s.add_alias("kim@naver.test", "kim@naver.test")
            .await
            .unwrap();
        s.add_alias("kim@naver.test", "copy@elsewhere.test")
            .await
            .unwrap();
        s.add_alias("@other.test", "lee@naver.test").await.unwrap();
        s.add_account("zed@naver.test", "h").await.unwrap();
        for (from, to) in [
            ("zed@naver.test", "lee@naver.test"),
            ("team@naver.test", "lee@naver.test"),
            ("team@naver.test", "zed@naver.test"),
            ("sales2@naver.test", "kim@naver.test"),
            ("sales2@naver.test", "sales@naver.test"),
            ("fwd2@naver.test", "Some.One@Elsewhere.TEST"),
        ] {
            s.add_alias(from, to).await.unwrap();
        }
        (dir, Deliverer::new(s, 0), lee, kim)
    }

    fn local(account: AccountId, address: &str) -> Target {
        Target::Local {
            account,
            address: address.into(),
        }
    }

    #[tokio::test]
    async fn rules() {
        let (_d, d, lee, kim) = setup().await;
        let r = |a: &'static str| {
            let d = d.clone();
            async move { d.resolve(a).await.unwrap() }
        };
        assert_eq!(
            r("lee@naver.test").await,
            Resolution::Deliver(vec![local(lee, "lee@naver.test")])
        );
        assert_eq!(
            r("LEE@Naver.TEST").await,
            Resolution::Deliver(vec![local(lee, "lee@naver.test")])
        );
        assert_eq!(
            r("lee+lists@naver.test").await,
            Resolution::Deliver(vec![local(lee, "lee@naver.test")])
        );
        assert_eq!(r("nobody@naver.test").await, Resolution::UnknownUser);
        assert_eq!(r("nobody+x@naver.test").await, Resolution::UnknownUser);
        assert_eq!(r("lee@gmail.test").await, Resolution::NotLocal);
        assert_eq!(
            r("sales@naver.test").await,
            // kim's own alias (keep a copy, forward one) applies through the chain too
            Resolution::Deliver(vec![
                local(lee, "lee@naver.test"),
                local(kim, "kim@naver.test"),
                Target::Remote("copy@elsewhere.test".into())
            ])
        );
        assert_eq!(
            r("kim@naver.test").await,
            Resolution::Deliver(vec![
                local(kim, "kim@naver.test"),
                Target::Remote("copy@elsewhere.test".into())
            ])
        );
        assert_eq!(
            r("fwd@naver.test").await,
            Resolution::Deliver(vec![Target::Remote("someone@elsewhere.test".into())])
        );
        assert_eq!(r("loop1@naver.test").await, Resolution::UnknownUser);
        // A remote target keeps its local part's case (RFC 5321 2.4).
        assert_eq!(
            r("FWD2@naver.test").await,
            Resolution::Deliver(vec![Target::Remote("Some.One@elsewhere.test".into())])
        );
        // Two aliases meeting: sales2 reaches kim directly and through sales, whose other
        // target is lee; the same copies as for sales (kim's own alias still applies), and
        // nobody gets two.
        assert_eq!(r("sales2@naver.test").await, r("sales@naver.test").await);
        // An account forwarding elsewhere (zed -> lee) gets no copy when an alias reaches
        // it after its target was already expanded (team -> lee, team -> zed).
        assert_eq!(
            r("team@naver.test").await,
            Resolution::Deliver(vec![local(lee, "lee@naver.test")])
        );
        assert_eq!(
            r("zed@naver.test").await,
            Resolution::Deliver(vec![local(lee, "lee@naver.test")])
        );
        assert_eq!(
            r("anything@other.test").await,
            Resolution::Deliver(vec![local(lee, "lee@naver.test")])
        );
    }
}
