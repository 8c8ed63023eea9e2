//! SMTP delivery of the outbox (DCV approval links, subscriber agreements).
//!
//! Messages are written to the `outbox` table in the transaction that
//! creates them; when `[smtp] relay` is configured, the lifecycle loop sends
//! the undelivered ones through that relay (plain SMTP, as to a local MTA
//! that handles TLS and onward delivery) and records each attempt, so a
//! relay outage delays mail but never loses it.

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::{App, AppError};

/// `[smtp]` settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// `host:port` of the relay.
    pub relay: String,
    /// Envelope and header sender.
    #[serde(default = "default_from")]
    pub from: String,
}

fn default_from() -> String {
    "certhub@localhost".into()
}

/// Tries before a message is left for the operator (`admin outbox`).
pub const MAX_ATTEMPTS: i64 = 10;

impl App {
    /// Sends undelivered outbox messages; returns how many were delivered.
    pub async fn deliver_outbox(&self) -> Result<usize, AppError> {
        let Some(smtp) = self.settings().smtp.clone() else {
            return Ok(0);
        };
        let mut delivered = 0;
        for m in self.db().undelivered_outbox(MAX_ATTEMPTS, 50).await? {
            let result = send(&smtp, &m.recipient, &m.subject, &m.body).await;
            match &result {
                Ok(()) => delivered += 1,
                Err(e) => {
                    tracing::warn!(message = m.id, error = %e, "SMTP delivery failed; will retry")
                }
            }
            self.db()
                .outbox_attempt(m.id, result.err().as_deref(), self.now())
                .await?;
        }
        Ok(delivered)
    }
}

/// One SMTP transaction. Errors are human-readable strings for the outbox row.
pub async fn send(smtp: &SmtpSettings, to: &str, subject: &str, body: &str) -> Result<(), String> {
    if [to, subject, &smtp.from]
        .iter()
        .any(|s| s.contains(['\r', '\n']))
    {
        return Err("header injection refused".into());
    }
    let fut = async {
        let stream = TcpStream::connect(&smtp.relay)
            .await
            .map_err(|e| format!("connect {}: {e}", smtp.relay))?;
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        expect(&mut r, 220).await?;
        command(&mut r, &mut w, "HELO certhub\r\n", 250).await?;
        command(
            &mut r,
            &mut w,
            &format!("MAIL FROM:<{}>\r\n", smtp.from),
            250,
        )
        .await?;
        command(&mut r, &mut w, &format!("RCPT TO:<{to}>\r\n"), 250).await?;
        command(&mut r, &mut w, "DATA\r\n", 354).await?;
        let mut data = format!(
            "From: <{}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
            smtp.from
        );
        for line in body.lines() {
            // Dot-stuffing (RFC 5321 4.5.2).
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        command(&mut r, &mut w, &data, 250).await?;
        let _ = w.write_all(b"QUIT\r\n").await;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| "SMTP timeout".to_string())?
}

async fn command<R: AsyncBufReadExt + Unpin, W: AsyncWriteExt + Unpin>(
    r: &mut R,
    w: &mut W,
    line: &str,
    code: u16,
) -> Result<(), String> {
    w.write_all(line.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    expect(r, code).await
}

/// Reads a (possibly multi-line) reply and checks its code.
async fn expect<R: AsyncBufReadExt + Unpin>(r: &mut R, code: u16) -> Result<(), String> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)
            .await
            .map_err(|e| format!("read: {e}"))?
            == 0
        {
            return Err("connection closed by the relay".into());
        }
        let got: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad reply {line:?}"))?;
        if line.as_bytes().get(3) == Some(&b'-') {
            continue;
        }
        return if got == code {
            Ok(())
        } else {
            Err(format!("relay answered {}", line.trim_end()))
        };
    }
}
