//! Not-authenticated state and session-wide commands: STARTTLS, LOGIN, AUTHENTICATE, ENABLE.

use auth::{AuthError, sasl};
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;

use crate::session::{Flow, Session};

impl Session {
    pub(crate) async fn handle_starttls(&mut self, tag: &str) -> Flow {
        if self.srv.tls.is_none() {
            return self.bad(tag, "STARTTLS not available");
        }
        if self.is_tls() {
            return self.bad(tag, "Already using TLS");
        }
        if self.is_compressed() {
            // RFC 4978 4: TLS may not start above compression. COMPRESS needs a login, which
            // already rules STARTTLS out; this keeps the rule if that ever changes.
            return self.bad(tag, "STARTTLS after COMPRESS is not allowed");
        }
        self.ok(tag, "Begin TLS negotiation now")?;
        self.start_tls().await
    }

    pub(crate) async fn handle_login(&mut self, tag: &str, user: &str, pass: &str) -> Flow {
        if !self.auth_allowed() {
            // RFC 9051 6.2.3: LOGINDISABLED; [PRIVACYREQUIRED] (RFC 5530).
            return self.no(tag, "[PRIVACYREQUIRED] Use STARTTLS before logging in");
        }
        self.authenticate(tag, user, pass).await
    }

    pub(crate) async fn handle_authenticate(
        &mut self,
        tag: &str,
        mechanism: &AuthMechanism<'_>,
        initial: Option<Vec<u8>>,
    ) -> Flow {
        if !self.auth_allowed() {
            return self.no(tag, "[PRIVACYREQUIRED] Use STARTTLS before authenticating");
        }
        if !matches!(mechanism, AuthMechanism::Plain) {
            return self.no(tag, "[CANNOT] Unsupported mechanism; use PLAIN");
        }
        let decoded = match initial {
            // SASL-IR (RFC 4959): the initial response came with the command, already decoded.
            Some(bytes) => bytes,
            None => {
                self.out().extend_from_slice(b"+ \r\n");
                let line = self.read_line().await?;
                let text = String::from_utf8_lossy(&line).trim().to_string();
                if text == "*" {
                    return self.bad(tag, "Authentication cancelled");
                }
                match sasl::decode_response(&text) {
                    Ok(d) => d,
                    Err(_) => return self.bad(tag, "Invalid base64 in response"),
                }
            }
        };
        match sasl::parse_plain(&decoded) {
            Ok(p) => self.authenticate(tag, &p.authcid, &p.password).await,
            Err(e) => self.no(tag, &format!("[AUTHENTICATIONFAILED] {e}")),
        }
    }

    async fn authenticate(&mut self, tag: &str, user: &str, pass: &str) -> Flow {
        match self.srv.auth.authenticate(self.peer.ip(), user, pass).await {
            Ok(identity) => {
                tracing::info!(peer = %self.peer, user = identity.address, "IMAP login");
                self.user = Some(identity);
                let caps = self.capabilities();
                self.ok(tag, &format!("[CAPABILITY {caps}] Logged in"))
            }
            Err(AuthError::InvalidCredentials) => {
                tracing::info!(peer = %self.peer, user, "IMAP login failed");
                self.no(tag, "[AUTHENTICATIONFAILED] Invalid credentials")
            }
            Err(AuthError::RateLimited(left)) => self.no(
                tag,
                &format!(
                    "[UNAVAILABLE] Too many failed logins; try again in {} s",
                    left.as_secs().max(1)
                ),
            ),
            Err(e) => {
                tracing::error!("IMAP authentication error: {e}");
                self.no(tag, "[UNAVAILABLE] Temporary authentication failure")
            }
        }
    }

    pub(crate) async fn handle_enable(&mut self, tag: &str, caps: &[CapabilityEnable<'_>]) -> Flow {
        if self.user.is_none() {
            return self.bad(tag, "Log in first");
        }
        let mut enabled = Vec::new();
        for cap in caps {
            let name = cap.to_string().to_ascii_uppercase();
            let newly = match name.as_str() {
                "CONDSTORE" => !std::mem::replace(&mut self.condstore, true),
                "UTF8=ACCEPT" => !std::mem::replace(&mut self.utf8, true),
                "IMAP4REV2" => {
                    // RFC 9051: names are UTF-8 on the wire.
                    self.utf8 = true;
                    !std::mem::replace(&mut self.rev2, true)
                }
                "QRESYNC" => {
                    // RFC 7162 3.2.3: QRESYNC implies CONDSTORE.
                    self.condstore = true;
                    !std::mem::replace(&mut self.qresync, true)
                }
                _ => false,
            };
            if newly {
                enabled.push(name);
            }
        }
        self.untagged(format!("ENABLED {}", enabled.join(" ")).trim_end());
        self.ok(tag, "ENABLE completed")
    }
}
