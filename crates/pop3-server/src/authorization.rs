//! The AUTHORIZATION state: CAPA, STLS, USER/PASS, AUTH PLAIN, and entering TRANSACTION.

use auth::{AuthError, Identity, sasl};
use proto_pop3::Code;

use crate::maildrop::Maildrop;
use crate::session::{End, Flow, Session, State};

/// Failed logins in one session before it is closed (the per-IP lockout of the `auth` crate
/// counts across sessions and protocols).
const MAX_AUTH_FAILURES: u32 = 3;

impl Session {
    /// RFC 2449 5: the capabilities of the current state.
    pub(crate) fn handle_capa(&mut self) {
        let authorization = matches!(self.state, State::Authorization { .. });
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "PIPELINING"];
        if authorization {
            caps.push("AUTH-RESP-CODE");
            // RFC 2595 4: no USER (nor SASL) where plaintext passwords would be refused.
            if self.auth_allowed() {
                caps.extend(["USER", "SASL PLAIN"]);
            }
            if self.srv.tls.is_some() && !self.is_tls() {
                caps.push("STLS");
            }
        }
        // RFC 2449 6.7: messages are never deleted by the server on its own.
        caps.extend(["EXPIRE NEVER", "IMPLEMENTATION Postern"]);
        proto_pop3::ok(&mut self.out, "Capability list follows");
        for c in caps {
            proto_pop3::response::line(&mut self.out, c);
        }
        proto_pop3::response::end(&mut self.out);
    }

    pub(crate) async fn handle_stls(&mut self) -> Flow {
        if self.srv.tls.is_none() {
            return self.error(None, "STLS not available");
        }
        if self.is_tls() {
            return self.error(None, "Already using TLS");
        }
        proto_pop3::ok(&mut self.out, "Begin TLS negotiation");
        self.start_tls().await?;
        // RFC 2595 4: forget what the client said before TLS.
        self.state = State::Authorization { user: None };
        Ok(())
    }

    pub(crate) fn handle_user(&mut self, name: String) -> Flow {
        if !self.auth_allowed() {
            return self.error(
                Some(Code::Auth),
                "Plaintext authentication disallowed without TLS; use STLS",
            );
        }
        // The same answer for every name: USER must not tell which accounts exist.
        self.state = State::Authorization { user: Some(name) };
        proto_pop3::ok(&mut self.out, "Send your password");
        Ok(())
    }

    pub(crate) async fn handle_pass(&mut self, password: &str) -> Flow {
        let user = match &mut self.state {
            State::Authorization { user } => user.take(),
            State::Transaction(_) => None,
        };
        let Some(user) = user else {
            return self.error(None, "Send USER first");
        };
        if !self.auth_allowed() {
            return self.error(
                Some(Code::Auth),
                "Plaintext authentication disallowed without TLS; use STLS",
            );
        }
        self.authenticate(&user, password).await
    }

    pub(crate) async fn handle_auth(
        &mut self,
        mechanism: Option<String>,
        initial: Option<String>,
    ) -> Flow {
        if !self.auth_allowed() {
            return self.error(
                Some(Code::Auth),
                "Plaintext authentication disallowed without TLS; use STLS",
            );
        }
        let Some(mechanism) = mechanism else {
            // RFC 1734 / common practice: a bare AUTH lists the mechanisms.
            proto_pop3::ok(&mut self.out, "Supported mechanisms follow");
            proto_pop3::response::line(&mut self.out, "PLAIN");
            proto_pop3::response::end(&mut self.out);
            return Ok(());
        };
        if mechanism != "PLAIN" {
            return self.error(None, "Unsupported authentication mechanism; use PLAIN");
        }
        let response = match initial {
            // RFC 5034 4: the initial response came with the command.
            Some(r) => r,
            None => {
                self.out.extend_from_slice(b"+ \r\n");
                let Some(line) = self.read_line(sasl::MAX_RESPONSE).await? else {
                    return self.error(Some(Code::Auth), "Authentication response too long");
                };
                String::from_utf8_lossy(&line).into_owned()
            }
        };
        // RFC 5034 4: "*" cancels the exchange.
        if response.trim() == "*" {
            return self.error(None, "Authentication cancelled");
        }
        let plain = sasl::decode_response(&response).and_then(|d| sasl::parse_plain(&d));
        match plain {
            Ok(p) => self.authenticate(&p.authcid, &p.password).await,
            Err(e) => self.error(Some(Code::Auth), &format!("Authentication failed: {e}")),
        }
    }

    async fn authenticate(&mut self, user: &str, password: &str) -> Flow {
        match self
            .srv
            .auth
            .authenticate(self.peer.ip(), user, password)
            .await
        {
            Ok(identity) => self.login(identity).await,
            Err(AuthError::InvalidCredentials) => {
                tracing::info!(peer = %self.peer, user, "POP3 login failed");
                self.auth_failures += 1;
                self.error(Some(Code::Auth), "Invalid user name or password")?;
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    return Err(End::Closed);
                }
                Ok(())
            }
            Err(AuthError::RateLimited(left)) => self.error(
                Some(Code::SysTemp),
                &format!(
                    "Too many failed logins; try again in {} s",
                    left.as_secs().max(1)
                ),
            ),
            Err(e) => {
                tracing::error!("POP3 authentication error: {e}");
                self.error(Some(Code::SysTemp), "Temporary authentication failure")
            }
        }
    }

    /// Locks the maildrop, takes the snapshot, and enters the TRANSACTION state.
    async fn login(&mut self, identity: Identity) -> Flow {
        let Some(lock) = self.srv.locks.try_lock(identity.account) else {
            tracing::info!(peer = %self.peer, user = identity.address, "POP3 maildrop in use");
            return self.error(
                Some(Code::InUse),
                "Maildrop is locked by another POP3 session",
            );
        };
        match Maildrop::open(&self.srv.store, identity, lock).await {
            Ok(m) => {
                tracing::info!(peer = %self.peer, user = m.identity.address, "POP3 login");
                let (count, size) = m.stat();
                let text = format!("Logged in; maildrop has {count} messages ({size} octets)");
                self.state = State::Transaction(Box::new(m));
                proto_pop3::ok(&mut self.out, &text);
                Ok(())
            }
            Err(e) => {
                tracing::error!("POP3 maildrop snapshot failed: {e}");
                self.error(
                    Some(Code::SysTemp),
                    "Cannot open the maildrop; try again later",
                )
            }
        }
    }
}
