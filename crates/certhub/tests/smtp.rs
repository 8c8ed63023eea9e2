//! Outbox mail goes out through a configured SMTP relay, exactly once, with
//! dot-stuffing; a relay that refuses leaves the message for a retry.

use std::sync::{Arc, Mutex};

use certhub::testing::{TestDb, TestServer};
use certhub_app::mail::SmtpSettings;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A minimal relay that records each DATA section; `refuse_rcpt` makes it answer 550.
async fn fake_relay(refuse_rcpt: bool) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    let reply: &[u8] = if line.starts_with("DATA") {
                        w.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            r.read_line(&mut l).await.unwrap();
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        sink.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if line.starts_with("RCPT") && refuse_rcpt {
                        b"550 no such user\r\n"
                    } else if line.starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(reply).await.unwrap();
                    line.clear();
                }
            });
        }
    });
    (addr, got)
}

async fn queue(s: &TestServer, body: &str) {
    let db = s.app.db();
    let mut tx = db.begin().await.unwrap();
    db.insert_outbox(
        &mut tx,
        None,
        "admin@example.com",
        "Approve certificate for example.com",
        body,
        s.app.now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn outbox_is_delivered_once() {
    let (relay, got) = fake_relay(false).await;
    let s = TestServer::start_with(TestDb::Sqlite, |st| {
        st.smtp = Some(SmtpSettings {
            relay: relay.clone(),
            from: "certhub@example.net".into(),
        })
    })
    .await
    .unwrap();
    queue(
        &s,
        "Open https://certhub.example/dcv/approve/abc\n.leading dot line",
    )
    .await;
    assert_eq!(s.app.deliver_outbox().await.unwrap(), 1);
    assert_eq!(
        s.app.deliver_outbox().await.unwrap(),
        0,
        "delivered messages are not sent again"
    );
    let mails = got.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: <admin@example.com>"));
    assert!(mails[0].contains("Subject: Approve certificate for example.com"));
    assert!(mails[0].contains("/dcv/approve/abc"));
    assert!(
        mails[0].contains("\r\n..leading dot line"),
        "dot-stuffed: {}",
        mails[0]
    );
}

#[tokio::test]
async fn refused_mail_stays_for_retry() {
    let (relay, got) = fake_relay(true).await;
    let s = TestServer::start_with(TestDb::Sqlite, |st| {
        st.smtp = Some(SmtpSettings {
            relay: relay.clone(),
            from: "certhub@example.net".into(),
        })
    })
    .await
    .unwrap();
    queue(&s, "link").await;
    assert_eq!(s.app.deliver_outbox().await.unwrap(), 0);
    assert!(got.lock().unwrap().is_empty());
    assert_eq!(
        s.app.db().undelivered_outbox(10, 10).await.unwrap().len(),
        1,
        "kept for a retry"
    );
    assert_eq!(
        s.app.db().outbox_messages().await.unwrap().len(),
        1,
        "still in the operator's outbox"
    );
}

#[tokio::test]
async fn without_smtp_nothing_is_sent() {
    let s = TestServer::start(TestDb::Sqlite).await.unwrap();
    queue(&s, "link").await;
    assert_eq!(s.app.deliver_outbox().await.unwrap(), 0);
    assert_eq!(
        s.app.db().undelivered_outbox(10, 10).await.unwrap().len(),
        1
    );
}
