//! Admin commands. They open the same store as the server (safe while it runs: SQLite
//! serialises writers across processes) and report errors as clear one-line messages.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use mailbox_formats::{MboxReader, read_maildir, write_mbox_message};
use proto_smtp::Address;
use queue::Clock;
use store::{Flags, Mailbox, NewMessage, Store, StoreError, normalize_address};

/// Messages (or bytes) per import transaction: big enough to amortise the fsync, small enough
/// to keep memory bounded.
const IMPORT_BATCH_MESSAGES: usize = 500;
const IMPORT_BATCH_BYTES: usize = 32 * 1024 * 1024;
/// Largest message accepted by import.
const IMPORT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Validates and lower-cases a domain name.
pub fn parse_domain(domain: &str) -> anyhow::Result<String> {
    let d = normalize_address(domain);
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if d.is_empty() || d.len() > 253 || !d.split('.').all(valid_label) {
        bail!("{domain:?} is not a valid domain name");
    }
    Ok(d)
}

/// Validates and lower-cases a mailbox address (`local@domain`).
pub fn parse_address(address: &str) -> anyhow::Result<String> {
    Ok(normalize_address(&parse_address_as_given(address)?))
}

/// A valid address in its canonical form, the case of its local part kept.
fn parse_address_as_given(address: &str) -> anyhow::Result<String> {
    let a = Address::parse(address.trim())
        .map_err(|e| anyhow::anyhow!("{address:?} is not a valid address: {e}"))?;
    parse_domain(&a.domain).with_context(|| format!("{address:?} is not a valid address"))?;
    Ok(a.to_string())
}

/// An alias target, and whether it is hosted here: normalized if so; a remote one keeps its
/// local part's case (RFC 5321 2.4: only its own host may fold it).
async fn parse_alias_target(store: &Store, target: &str) -> anyhow::Result<(String, bool)> {
    let t = parse_address_as_given(target)?;
    let hosted = store
        .is_local_domain(&normalize_address(store::domain_of(&t)))
        .await
        .map_err(explain)?;
    Ok(if hosted {
        (normalize_address(&t), true)
    } else {
        (store::remote_address(&t), false)
    })
}

/// An alias source: an address, or `@domain` for a catch-all.
fn parse_alias_source(source: &str) -> anyhow::Result<String> {
    match source.trim().strip_prefix('@') {
        Some(domain) => Ok(format!("@{}", parse_domain(domain)?)),
        None => parse_address(source),
    }
}

/// Fails unless the domain of `address` (or `@domain`) is hosted here.
async fn ensure_hosted(store: &Store, address: &str) -> anyhow::Result<()> {
    ensure_hosted_domain(store, store::domain_of(address)).await
}

async fn ensure_hosted_domain(store: &Store, domain: &str) -> anyhow::Result<()> {
    if !store.is_local_domain(domain).await.map_err(explain)? {
        bail!(
            "domain {domain} is not hosted here: add it first with `postern domain add {domain}`"
        );
    }
    Ok(())
}

fn explain(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn domain_add(store: &Store, domain: &str) -> anyhow::Result<()> {
    let d = parse_domain(domain)?;
    store.add_domain(&d).await.map_err(explain)?;
    println!("domain {d} added");
    println!(
        "every domain needs a postmaster (RFC 5321 4.5.1): \
         postern alias add postmaster@{d} YOU@{d}"
    );
    Ok(())
}

pub async fn domain_remove(store: &Store, domain: &str) -> anyhow::Result<()> {
    let d = parse_domain(domain)?;
    store.remove_domain(&d).await.map_err(explain)?;
    println!("domain {d} removed");
    Ok(())
}

pub async fn domain_list(store: &Store) -> anyhow::Result<()> {
    for d in store.list_domains().await.map_err(explain)? {
        println!("{d}");
    }
    Ok(())
}

pub async fn user_add(store: &Store, address: &str, password: &str) -> anyhow::Result<()> {
    let a = parse_address(address)?;
    ensure_hosted(store, &a).await?;
    let hash = hash(password).await?;
    store.add_account(&a, &hash).await.map_err(explain)?;
    println!("user {a} added");
    Ok(())
}

pub async fn user_passwd(store: &Store, address: &str, password: &str) -> anyhow::Result<()> {
    let a = parse_address(address)?;
    let hash = hash(password).await?;
    store.set_password(&a, &hash).await.map_err(explain)?;
    println!("password of {a} changed");
    Ok(())
}

async fn hash(password: &str) -> anyhow::Result<String> {
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    let password = password.to_string();
    Ok(tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??)
}

pub async fn user_remove(store: &Store, address: &str) -> anyhow::Result<()> {
    let a = parse_address(address)?;
    // The store removes the aliases onto the account with it: say which.
    let onto = aliases_onto(store, &a).await?;
    store.remove_account(&a).await.map_err(explain)?;
    println!("user {a} removed, with all its mail");
    for alias in onto {
        println!("alias {} -> {a} removed with it", alias.source);
    }
    Ok(())
}

/// The aliases whose target is `address`.
async fn aliases_onto(store: &Store, address: &str) -> anyhow::Result<Vec<store::Alias>> {
    let all = store.list_aliases(None).await.map_err(explain)?;
    Ok(all.into_iter().filter(|a| a.target == address).collect())
}

pub async fn user_list(store: &Store, domain: Option<&str>) -> anyhow::Result<()> {
    let domain = domain.map(parse_domain).transpose()?;
    if let Some(d) = &domain {
        ensure_hosted_domain(store, d).await?;
    }
    for a in store
        .list_accounts(domain.as_deref())
        .await
        .map_err(explain)?
    {
        println!("{}", a.address);
    }
    Ok(())
}

pub async fn alias_add(store: &Store, source: &str, target: &str) -> anyhow::Result<()> {
    let s = parse_alias_source(source)?;
    let (t, hosted) = parse_alias_target(store, target).await?;
    ensure_hosted(store, &s).await?;
    if hosted {
        let found = store.lookup_address(&t).await.map_err(explain)?;
        if found.account.is_none() && found.alias_targets.is_empty() {
            bail!("target {t} is in a hosted domain but is neither a user nor an alias");
        }
    }
    store.add_alias(&s, &t).await.map_err(explain)?;
    println!("alias {s} -> {t} added");
    Ok(())
}

pub async fn alias_remove(store: &Store, source: &str, target: Option<&str>) -> anyhow::Result<()> {
    let s = parse_alias_source(source)?;
    let t = match target {
        Some(t) => Some(parse_alias_target(store, t).await?.0),
        None => None,
    };
    store
        .remove_alias(&s, t.as_deref())
        .await
        .map_err(explain)?;
    match t {
        Some(t) => println!("alias {s} -> {t} removed"),
        None => println!("alias {s} removed, with all its targets"),
    }
    // Aliases onto an address that is now nothing no longer deliver: say so, as `alias add`
    // would have refused them.
    let left = store.lookup_address(&s).await.map_err(explain)?;
    if left.account.is_none() && left.alias_targets.is_empty() {
        for alias in aliases_onto(store, &s).await? {
            eprintln!(
                "warning: alias {} -> {s} now leads nowhere (mail to it gets 550); \
                 remove it with `postern alias remove {} {s}`",
                alias.source, alias.source
            );
        }
    }
    Ok(())
}

pub async fn alias_list(store: &Store, domain: Option<&str>) -> anyhow::Result<()> {
    let domain = domain.map(parse_domain).transpose()?;
    if let Some(d) = &domain {
        ensure_hosted_domain(store, d).await?;
    }
    for a in store
        .list_aliases(domain.as_deref())
        .await
        .map_err(explain)?
    {
        println!("{} -> {}", a.source, a.target);
    }
    Ok(())
}

async fn account_mailboxes(
    store: &Store,
    address: &str,
) -> anyhow::Result<(String, store::AccountId, Vec<Mailbox>)> {
    let a = parse_address(address)?;
    let creds = store
        .credentials(&a)
        .await
        .map_err(explain)?
        .with_context(|| format!("account {a} not found"))?;
    let boxes = store.list_mailboxes(creds.id).await.map_err(explain)?;
    Ok((a, creds.id, boxes))
}

/// The address in the first `Return-Path:` header, if any.
fn return_path(data: &[u8]) -> Option<String> {
    let first = data.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.trim_end();
    let (name, value) = line.split_once(':')?;
    if !name.eq_ignore_ascii_case("return-path") {
        return None;
    }
    let v = value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The mailbox called `name`: INBOX in any case (RFC 9051 5.1), other names exactly.
fn find_mailbox<'a>(boxes: &'a [Mailbox], name: &str) -> Option<&'a Mailbox> {
    boxes
        .iter()
        .find(|m| m.name == name || (name.eq_ignore_ascii_case("INBOX") && m.name == "INBOX"))
}

/// Writes one mailbox as mboxrd to stdout.
pub async fn export(store: &Store, address: &str, mailbox: &str) -> anyhow::Result<()> {
    let (a, _, boxes) = account_mailboxes(store, address).await?;
    let mb =
        find_mailbox(&boxes, mailbox).with_context(|| format!("{a} has no mailbox {mailbox:?}"))?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for m in store.list_messages(mb.id).await.map_err(explain)? {
        let data = store.read_blob(m.blob).await.map_err(explain)?;
        let sender = return_path(&data).unwrap_or_else(|| "MAILER-DAEMON".into());
        let names = m.flags.names();
        let flags: Vec<&str> = names.iter().map(String::as_str).collect();
        write_mbox_message(&mut out, &sender, m.internal_date, &flags, &data)?;
    }
    out.flush()?;
    Ok(())
}

/// Buffers messages for one mailbox and appends them in batches.
struct Importer<'a> {
    store: &'a Store,
    mailbox: Mailbox,
    batch: Vec<NewMessage>,
    bytes: usize,
    imported: usize,
}

impl Importer<'_> {
    async fn push(&mut self, m: NewMessage) -> anyhow::Result<()> {
        self.bytes += m.data.len();
        self.batch.push(m);
        if self.batch.len() >= IMPORT_BATCH_MESSAGES || self.bytes >= IMPORT_BATCH_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.imported += batch.len();
        self.bytes = 0;
        self.store
            .append(self.mailbox.id, batch)
            .await
            .map_err(explain)?;
        Ok(())
    }
}

async fn mailbox_named(
    store: &Store,
    account: store::AccountId,
    boxes: &mut Vec<Mailbox>,
    name: &str,
) -> anyhow::Result<Mailbox> {
    if let Some(m) = find_mailbox(boxes, name) {
        return Ok(m.clone());
    }
    let m = store.create_mailbox(account, name).await.map_err(explain)?;
    boxes.push(m.clone());
    Ok(m)
}

/// Imports an mbox file or a Maildir (Dovecot/Courier Maildir++, or a mail home containing `Maildir/`).
pub async fn import(
    store: &Store,
    address: &str,
    path: &Path,
    mailbox: Option<&str>,
) -> anyhow::Result<()> {
    let (a, account, mut boxes) = account_mailboxes(store, address).await?;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let now = queue::SystemClock.now();
    let mut skipped = 0usize;
    let mut report = Vec::new();
    if meta.is_dir() {
        if mailbox.is_some() {
            bail!("--mailbox applies to mbox files; a Maildir's folders keep their own names");
        }
        let folders = read_maildir(path)?;
        for folder in folders {
            let mb = mailbox_named(store, account, &mut boxes, &folder.name).await?;
            let mut imp = Importer {
                store,
                mailbox: mb,
                batch: Vec::new(),
                bytes: 0,
                imported: 0,
            };
            for msg in &folder.messages {
                match msg.read(IMPORT_MAX_MESSAGE) {
                    Ok(data) => {
                        imp.push(NewMessage {
                            data,
                            internal_date: msg.internal_date,
                            flags: Flags::from_names(&msg.flags),
                        })
                        .await?
                    }
                    Err(e) => {
                        eprintln!("skipped: {e}");
                        skipped += 1;
                    }
                }
            }
            imp.flush().await?;
            report.push((folder.name, imp.imported));
        }
    } else {
        let name = mailbox.unwrap_or("INBOX");
        let mb = mailbox_named(store, account, &mut boxes, name).await?;
        let mut imp = Importer {
            store,
            mailbox: mb,
            batch: Vec::new(),
            bytes: 0,
            imported: 0,
        };
        for item in MboxReader::open(path, IMPORT_MAX_MESSAGE)? {
            match item {
                Ok(m) => {
                    imp.push(NewMessage {
                        data: m.data,
                        internal_date: m.date.unwrap_or(now),
                        flags: Flags::from_names(&m.flags),
                    })
                    .await?
                }
                Err(e @ mailbox_formats::Error::MessageTooLarge { .. }) => {
                    eprintln!("skipped: {e}");
                    skipped += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        imp.flush().await?;
        report.push((name.to_string(), imp.imported));
    }
    let total: usize = report.iter().map(|(_, n)| n).sum();
    for (name, n) in &report {
        println!("{name}: {n} message(s)");
    }
    println!(
        "imported {total} message(s) for {a}{}",
        if skipped > 0 {
            format!(", skipped {skipped}")
        } else {
            String::new()
        }
    );
    Ok(())
}

fn utc(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn print_recipients(e: &store::QueueEntry) {
    for r in &e.recipients {
        let code = r
            .status_code
            .as_deref()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        let err = r
            .last_error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        println!("    to <{}>  {}{code}{err}", r.address, r.status.as_str());
    }
}

fn next_attempt(e: &store::QueueEntry) -> String {
    if e.leased {
        "being delivered".into()
    } else if e.next_attempt <= now() {
        "due now".into()
    } else {
        format!("next attempt {}", utc(e.next_attempt))
    }
}

pub async fn queue_list(store: &Store) -> anyhow::Result<()> {
    let entries = store.list_queue().await.map_err(explain)?;
    if entries.is_empty() {
        println!("queue is empty");
        return Ok(());
    }
    for e in &entries {
        println!(
            "{}  {}  {} bytes  from <{}>  attempts {}  {}",
            e.id,
            utc(e.created),
            e.size,
            e.sender.as_deref().unwrap_or(""),
            e.attempts,
            next_attempt(e)
        );
        print_recipients(e);
    }
    Ok(())
}

pub async fn queue_show(store: &Store, id: i64) -> anyhow::Result<()> {
    let e = store
        .queue_entry(id)
        .await
        .map_err(explain)?
        .with_context(|| format!("queue entry {id} not found"))?;
    println!("id            {}", e.id);
    println!("queued        {}", utc(e.created));
    println!("sender        <{}>", e.sender.as_deref().unwrap_or(""));
    println!("size          {} bytes", e.size);
    println!("attempts      {}", e.attempts);
    if let Some(t) = e.last_attempt {
        println!("last attempt  {}", utc(t));
    }
    println!("state         {}", next_attempt(&e));
    if e.warned {
        println!("              the sender was told of the delay");
    }
    println!("recipients");
    print_recipients(&e);
    for r in e.recipients.iter().filter(|r| r.remote_mta.is_some()) {
        println!(
            "    <{}> last answered by {}",
            r.address,
            r.remote_mta.as_deref().unwrap_or("")
        );
    }
    let data = store.read_blob(e.blob).await.map_err(explain)?;
    let (header, _) = message::header::split(&data);
    println!("headers");
    for line in String::from_utf8_lossy(header).lines() {
        if !line.is_empty() {
            println!("    {line}");
        }
    }
    Ok(())
}

pub async fn queue_retry(store: &Store, id: Option<i64>) -> anyhow::Result<()> {
    if let Some(id) = id
        && store.queue_entry(id).await.map_err(explain)?.is_none()
    {
        bail!("queue entry {id} not found");
    }
    let n = store.retry_queue(id, now()).await.map_err(explain)?;
    println!("{n} message(s) due now");
    Ok(())
}

pub async fn queue_delete(
    store: &Store,
    hostname: &str,
    id: i64,
    silent: bool,
) -> anyhow::Result<()> {
    if silent {
        if !store.delete_queue(id).await.map_err(explain)? {
            bail!("queue entry {id} not found");
        }
        println!("deleted {id}");
        return Ok(());
    }
    let deliverer = queue::Deliverer::new(store.clone(), 0);
    match queue::bounce_entry(&deliverer, hostname, id, now()).await {
        Ok(n) => {
            println!("deleted {id}; {n} recipient(s) returned to the sender");
            Ok(())
        }
        Err(queue::QueueError::NoSuchEntry(_)) => bail!("queue entry {id} not found"),
        Err(e) => Err(e.into()),
    }
}

pub async fn stats(store: &Store) -> anyhow::Result<()> {
    let s = store.stats().await.map_err(explain)?;
    println!(
        "domains {}\naccounts {}\naliases {}\nmessages {}\nqueued {}\nunsummarized {}",
        s.domains, s.accounts, s.aliases, s.messages, s.queued, s.unsummarized
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_domain_validation() {
        assert_eq!(parse_address("Lee@Naver.Test").unwrap(), "lee@naver.test");
        assert!(parse_address("lee").is_err());
        assert!(parse_address("lee@").is_err());
        assert!(parse_address("a b@x.test").is_err());
        assert!(parse_address("lee@[127.0.0.1]").is_err());
        assert_eq!(parse_domain("Naver.TEST").unwrap(), "naver.test");
        assert!(parse_domain("-bad.test").is_err());
        assert!(parse_domain("a..b").is_err());
        assert_eq!(parse_alias_source("@Naver.test").unwrap(), "@naver.test");
        assert_eq!(
            return_path(b"Return-Path: <kim@daum.test>\r\nX: y\r\n").as_deref(),
            Some("kim@daum.test")
        );
        assert_eq!(return_path(b"Return-Path: <>\r\n"), None);
    }
}
