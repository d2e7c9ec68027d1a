//! HELO/EHLO, MAIL and RCPT: who is talking, who sends, who receives.

use proto_smtp::{Body, ForwardPath, MailParams, Reply, ReversePath};
use queue::{Resolution, Target};

use crate::Role;
use crate::session::{End, Envelope, Greeting, Phase, Session};

impl Session {
    pub(crate) fn handle_helo(&mut self, name: String, esmtp: bool) -> Result<(), End> {
        // RFC 5321 4.1.4: HELO/EHLO resets any transaction in progress.
        self.phase = Phase::Idle;
        let s = &self.srv.settings;
        let mut lines = vec![format!("{} Hello {name} [{}]", s.hostname, self.peer.ip())];
        if esmtp {
            lines.extend(
                [
                    "PIPELINING",
                    "8BITMIME",
                    "SMTPUTF8",
                    "ENHANCEDSTATUSCODES",
                    "CHUNKING",
                ]
                .map(String::from),
            );
            lines.push(format!("SIZE {}", s.max_message_size));
            if self.srv.tls.is_some() && !self.is_tls() {
                lines.push("STARTTLS".into());
            }
            if self.auth_allowed() && self.identity.is_none() {
                lines.push("AUTH PLAIN LOGIN".into());
            }
            lines.push("HELP".into());
        }
        self.greeting = Some(Greeting { name, esmtp });
        self.reply(Reply::multiline(250, lines));
        Ok(())
    }

    pub(crate) async fn handle_mail(
        &mut self,
        from: ReversePath,
        params: MailParams,
    ) -> Result<(), End> {
        if self.greeting.is_none() {
            return self.error_reply(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
        }
        if matches!(self.phase, Phase::Mail(_)) {
            // RFC 5321 4.1.1.2: MAIL inside a transaction is a sequence error.
            return self.error_reply(Reply::new(503, "5.5.1", "Sender already specified"));
        }
        if self.srv.settings.role == Role::Submission && self.identity.is_none() {
            // RFC 4954 6
            return self.error_reply(Reply::new(530, "5.7.0", "Authentication required"));
        }
        if let Some(size) = params.size
            && size > self.srv.settings.max_message_size as u64
        {
            // RFC 1870 6.1
            return self.error_reply(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum of {} bytes",
                    self.srv.settings.max_message_size
                ),
            ));
        }
        if params.body == Some(Body::BinaryMime) {
            return self.error_reply(Reply::new(555, "5.5.4", "BODY=BINARYMIME not supported"));
        }
        let from = match from {
            ReversePath::Null => None,
            ReversePath::Address(a) => {
                if !a.is_ascii() && !params.smtputf8 {
                    // RFC 6531 3.4
                    return self.error_reply(Reply::new(
                        553,
                        "5.6.7",
                        "Non-ASCII address requires SMTPUTF8",
                    ));
                }
                Some(a.to_string())
            }
        };
        if let Some(identity) = self.identity.clone() {
            // Submission: the envelope sender must be one of the user's own addresses.
            let owned = match &from {
                None => Ok(false),
                Some(addr) => self.owns(&identity, addr).await,
            };
            let owned = match owned {
                Ok(owned) => owned,
                Err(e) => return self.lookup_failed("sender", e),
            };
            if !owned {
                return self.error_reply(Reply::new(
                    553,
                    "5.7.1",
                    format!(
                        "Sender address not owned by authenticated user {}",
                        identity.address
                    ),
                ));
            }
        }
        self.phase = Phase::Mail(Envelope {
            from,
            params,
            rcpts: Vec::new(),
            chunks: None,
            chunks_too_large: false,
        });
        self.reply(Reply::new(250, "2.1.0", "Sender OK"));
        Ok(())
    }

    /// A store failure while resolving `what`: 451, the client may try again (not counted as
    /// the client's error).
    fn lookup_failed(&mut self, what: &str, e: queue::QueueError) -> Result<(), End> {
        tracing::error!("resolving {what}: {e}");
        self.reply(Reply::new(
            451,
            "4.3.0",
            "Temporary lookup failure, try again later",
        ));
        Ok(())
    }

    /// Whether `address` is `identity`'s own address, a `+tag` form of it, or an alias that
    /// delivers to it. The own address counts even when an alias forwards its mail elsewhere.
    async fn owns(
        &self,
        identity: &auth::Identity,
        address: &str,
    ) -> Result<bool, queue::QueueError> {
        let address = store::normalize_address(address);
        let own = store::normalize_address(&identity.address);
        if address == own || store::untagged(&address).is_some_and(|a| a == own) {
            return Ok(true);
        }
        Ok(match self.srv.deliverer.resolve(&address).await? {
            Resolution::Deliver(targets) => targets.iter().any(
                |t| matches!(t, Target::Local { account, .. } if *account == identity.account),
            ),
            _ => false,
        })
    }

    pub(crate) async fn handle_rcpt(&mut self, to: ForwardPath) -> Result<(), End> {
        let max = self.srv.settings.max_recipients;
        let (smtputf8, count) = match &self.phase {
            Phase::Idle => {
                return self.error_reply(Reply::new(503, "5.5.1", "Need MAIL before RCPT"));
            }
            Phase::Mail(env) if env.chunks.is_some() => {
                return self.error_reply(Reply::new(503, "5.5.1", "RCPT not allowed during BDAT"));
            }
            Phase::Mail(env) => (env.params.smtputf8, env.rcpts.len()),
        };
        if count >= max {
            // RFC 5321 4.5.3.1.10: 452, the client sends the rest in another transaction.
            self.reply(Reply::new(452, "4.5.3", "Too many recipients"));
            return Ok(());
        }
        let address = match to {
            // RFC 5321 4.5.1: <Postmaster> without a domain must be accepted.
            ForwardPath::Postmaster => {
                match self
                    .srv
                    .deliverer
                    .postmaster(&self.srv.settings.hostname)
                    .await
                {
                    Ok(address) => address,
                    Err(e) => return self.lookup_failed("<Postmaster>", e),
                }
            }
            ForwardPath::Address(a) => {
                if !a.is_ascii() && !smtputf8 {
                    return self.error_reply(Reply::new(
                        553,
                        "5.6.7",
                        "Non-ASCII address requires SMTPUTF8",
                    ));
                }
                a.to_string()
            }
        };
        let resolution = match self.srv.deliverer.resolve(&address).await {
            Ok(r) => r,
            Err(e) => return self.lookup_failed(&address, e),
        };
        let targets = match resolution {
            Resolution::Deliver(targets) => targets,
            Resolution::UnknownUser => {
                return self.error_reply(Reply::new(
                    550,
                    "5.1.1",
                    format!("<{address}>: Recipient address rejected: no such user"),
                ));
            }
            Resolution::NotLocal if self.identity.is_some() => {
                vec![Target::Remote(store::remote_address(&address))]
            }
            Resolution::NotLocal => {
                return self.error_reply(Reply::new(
                    554,
                    "5.7.1",
                    format!("<{address}>: Relay access denied"),
                ));
            }
        };
        let size = match &self.phase {
            Phase::Mail(env) => env.params.size.unwrap_or(0),
            Phase::Idle => 0,
        };
        for t in &targets {
            if let Target::Local {
                account,
                address: owner,
            } = t
                && self
                    .srv
                    .deliverer
                    .over_quota(*account, size)
                    .await
                    .unwrap_or(false)
            {
                // RFC 3463 X.2.2: mailbox full; temporary, the owner may make room.
                self.reply(Reply::new(452, "4.2.2", format!("<{owner}>: Mailbox full")));
                return Ok(());
            }
        }
        if let Phase::Mail(env) = &mut self.phase {
            env.rcpts.push((address, targets));
        }
        self.reply(Reply::new(250, "2.1.5", "Recipient OK"));
        Ok(())
    }
}
