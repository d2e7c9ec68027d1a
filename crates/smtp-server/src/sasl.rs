//! AUTH (RFC 4954) with the PLAIN and LOGIN mechanisms, on the submission role only.

use auth::{AuthError, sasl};
use proto_smtp::Reply;

use crate::session::{End, Phase, Session};

impl Session {
    pub(crate) async fn handle_auth(
        &mut self,
        mechanism: String,
        initial: Option<String>,
    ) -> Result<(), End> {
        if !self.auth_allowed() {
            if self.srv.settings.role == crate::Role::Submission {
                // RFC 4954 6: 538 when the mechanism needs an encrypted connection.
                return self.error_reply(Reply::new(
                    538,
                    "5.7.11",
                    "Encryption required: use STARTTLS first",
                ));
            }
            return self.error_reply(Reply::new(502, "5.5.1", "AUTH not available here"));
        }
        if self.greeting.as_ref().is_none_or(|g| !g.esmtp) {
            return self.error_reply(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        if self.identity.is_some() {
            return self.error_reply(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if matches!(self.phase, Phase::Mail(_)) {
            return self.error_reply(Reply::new(
                503,
                "5.5.1",
                "AUTH not allowed during a mail transaction",
            ));
        }
        let credentials = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(r) => r,
                    None => match self.challenge("").await? {
                        Some(r) => r,
                        None => return Ok(()),
                    },
                };
                sasl::decode_response(&response)
                    .and_then(|d| sasl::parse_plain(&d))
                    .map(|p| (p.authcid, p.password))
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => Some(r),
                    None => self.challenge("Username:").await?,
                };
                let Some(user) = user else { return Ok(()) };
                let Some(pass) = self.challenge("Password:").await? else {
                    return Ok(());
                };
                sasl::parse_login_step(&user).and_then(|u| Ok((u, sasl::parse_login_step(&pass)?)))
            }
            _ => {
                return self.error_reply(Reply::new(
                    504,
                    "5.5.4",
                    "Unrecognized authentication mechanism",
                ));
            }
        };
        let (user, password) = match credentials {
            Ok(c) => c,
            Err(e) => {
                return self.error_reply(Reply::new(
                    501,
                    "5.5.2",
                    format!("Cannot decode response: {e}"),
                ));
            }
        };
        match self
            .srv
            .auth
            .authenticate(self.peer.ip(), &user, &password)
            .await
        {
            Ok(identity) => {
                tracing::info!(peer = %self.peer, user = identity.address, "authenticated");
                self.identity = Some(identity);
                self.reply(Reply::new(235, "2.7.0", "Authentication successful"));
                Ok(())
            }
            Err(AuthError::InvalidCredentials) => {
                tracing::info!(peer = %self.peer, user, "authentication failed");
                self.error_reply(Reply::new(
                    535,
                    "5.7.8",
                    "Authentication credentials invalid",
                ))
            }
            Err(AuthError::RateLimited(left)) => self.error_reply(Reply::new(
                454,
                "4.7.0",
                format!(
                    "Too many failed authentication attempts; try again in {} s",
                    left.as_secs().max(1)
                ),
            )),
            Err(e) => {
                tracing::error!("authentication error: {e}");
                self.reply(Reply::new(454, "4.7.0", "Temporary authentication failure"));
                Ok(())
            }
        }
    }

    /// Sends a 334 challenge and reads the response; `None` if the client cancelled ("*").
    async fn challenge(&mut self, text: &str) -> Result<Option<String>, End> {
        self.reply(Reply::multiline(334, vec![sasl::encode_challenge(text)]));
        let timeout = self.srv.settings.command_timeout;
        let read = |line: &[u8]| String::from_utf8_lossy(line).trim().to_string();
        let line = match self.next_line(timeout, true, read).await? {
            Ok(l) => l,
            Err(reply) => {
                self.error_reply(reply)?;
                return Ok(None);
            }
        };
        if line == "*" {
            // RFC 4954 4: the client cancelled.
            self.error_reply(Reply::new(501, "5.0.0", "Authentication cancelled"))?;
            return Ok(None);
        }
        Ok(Some(line))
    }
}
