//! Sending mail, behind a small trait with three transports.
//!
//! - `log`: nothing leaves the machine; the log says a mail of a given kind was "sent",
//!   never its address or content. For trying the service out.
//! - `file:DIR`: one RFC 5322 message per file in `DIR`, written to a temporary name
//!   and renamed, so a reader never sees half a message. For tests and for handing mail
//!   to another system.
//! - `smtp://host:port` (also `smtps://` and `?tls=required`, and `user:pass@`): an SMTP
//!   relay, through lettre.

use std::fmt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::store::OutboxMail;

/// A future a mailer returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), MailError>> + Send + 'a>>;

/// Something that delivers mails.
pub trait Mailer: Send + Sync + 'static {
    fn send<'a>(&'a self, mail: &'a OutboxMail) -> SendFuture<'a>;
}

/// Why a mail could not be sent. The text never contains the recipient or the body.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("invalid address: {0}")]
    Address(String),
    #[error("could not build the message: {0}")]
    Build(String),
    #[error("could not write the message: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMTP: {0}")]
    Smtp(String),
}

/// Which transport to use, as given by `--mail` / `TIRAGE_MAIL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    Log,
    File(PathBuf),
    Smtp(String),
}

impl FromStr for MailTransport {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "log" {
            Ok(Self::Log)
        } else if let Some(dir) = text.strip_prefix("file:") {
            if dir.is_empty() {
                return Err("file: needs a directory, such as file:./mail".into());
            }
            Ok(Self::File(PathBuf::from(dir)))
        } else if text.starts_with("smtp://") || text.starts_with("smtps://") {
            Ok(Self::Smtp(text.to_owned()))
        } else {
            Err(format!(
                "unknown mail transport {text:?}: expected log, file:DIR or smtp://host:port"
            ))
        }
    }
}

impl fmt::Display for MailTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Log => f.write_str("log"),
            Self::File(dir) => write!(f, "file:{}", dir.display()),
            // The URL may hold a password: show only where it goes.
            Self::Smtp(url) => {
                let host = url.split("://").nth(1).unwrap_or_default();
                let host = host.rsplit('@').next().unwrap_or_default();
                let host = host.split(['?', '/']).next().unwrap_or_default();
                write!(f, "smtp to {host}")
            }
        }
    }
}

/// Builds the mailer for a transport; `from` is the sender, such as
/// `Préfecture <no-reply@example.org>`.
pub fn build(transport: &MailTransport, from: &str) -> Result<Arc<dyn Mailer>, MailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| MailError::Address(format!("sender: {e}")))?;
    Ok(match transport {
        MailTransport::Log => Arc::new(LogMailer),
        MailTransport::File(dir) => {
            std::fs::create_dir_all(dir)?;
            Arc::new(FileMailer {
                dir: dir.clone(),
                from,
                counter: AtomicU64::new(0),
            })
        }
        MailTransport::Smtp(url) => {
            let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map_err(|e| MailError::Smtp(e.to_string()))?
                .build();
            Arc::new(SmtpMailer { transport, from })
        }
    })
}

/// The RFC 5322 message of an outbox mail: plain UTF-8 text, quoted-printable.
pub fn message(from: &Mailbox, mail: &OutboxMail) -> Result<Message, MailError> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|_| MailError::Address(format!("recipient of mail {}", mail.id)))?;
    let body = Body::new_with_encoding(mail.body.clone(), ContentTransferEncoding::QuotedPrintable)
        .map_err(|_| MailError::Build("body".into()))?;
    Message::builder()
        .message_id(None)
        .from(from.clone())
        .to(to)
        .subject(&mail.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))
}

/// Logs that a mail would have been sent; delivers nothing.
#[derive(Debug)]
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send<'a>(&'a self, mail: &'a OutboxMail) -> SendFuture<'a> {
        Box::pin(async move {
            tracing::info!(mail.id = mail.id, mail.kind = %mail.kind, "mail not delivered (mail transport is log)");
            Ok(())
        })
    }
}

/// Writes each mail as a `.eml` file.
#[derive(Debug)]
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
    counter: AtomicU64,
}

impl FileMailer {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Mailer for FileMailer {
    fn send<'a>(&'a self, mail: &'a OutboxMail) -> SendFuture<'a> {
        Box::pin(async move {
            let bytes = message(&self.from, mail)?.formatted();
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let name = format!("{:010}-{}", mail.id, mail.kind);
            let tmp = self
                .dir
                .join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::rename(&tmp, self.dir.join(format!("{name}.eml"))).await?;
            Ok(())
        })
    }
}

/// Sends through an SMTP relay.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, mail: &'a OutboxMail) -> SendFuture<'a> {
        Box::pin(async move {
            let message = message(&self.from, mail)?;
            self.transport
                .send(message)
                .await
                .map(drop)
                .map_err(|e| MailError::Smtp(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!("log".parse(), Ok(MailTransport::Log));
        assert_eq!(
            "file:/tmp/m".parse(),
            Ok(MailTransport::File("/tmp/m".into()))
        );
        assert_eq!(
            "smtp://localhost:25".parse(),
            Ok(MailTransport::Smtp("smtp://localhost:25".into()))
        );
        assert!("file:".parse::<MailTransport>().is_err());
        assert!("sendmail".parse::<MailTransport>().is_err());
        let shown =
            MailTransport::Smtp("smtps://me:secret@relay.example.org:465".into()).to_string();
        assert_eq!(shown, "smtp to relay.example.org:465");
    }

    #[test]
    fn builds_a_quoted_printable_message() {
        let from: Mailbox = "tirage <no-reply@example.org>".parse().unwrap();
        let mail = OutboxMail {
            id: 1,
            kind: "verification_code".into(),
            recipient: "ana@example.org".into(),
            subject: "Votre code de vérification".into(),
            body: "Voici votre code :\n\n    123456\n".into(),
            attempts: 0,
        };
        let text = String::from_utf8(message(&from, &mail).unwrap().formatted()).unwrap();
        assert!(text.contains("To: ana@example.org"));
        assert!(text.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(text.lines().any(|l| l.trim() == "123456"));
    }
}
