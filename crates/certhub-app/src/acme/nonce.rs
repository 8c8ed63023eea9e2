//! Anti-replay nonces (RFC 8555 §6.5): stateless and HMAC-sealed, so issuing
//! one costs no I/O, plus a record of used nonces for single use.
//!
//! A nonce is base64url(issued-at ‖ 8 random bytes ‖ HMAC-SHA256(...)[..16]),
//! valid for [`NONCE_TTL`] seconds. Used nonces are remembered until they
//! expire: on PostgreSQL in the shared `acme_nonces` table (any node may
//! receive the next request), on SQLite (one node by design) in memory. In
//! memory mode the MAC also covers a per-process salt, so nonces issued before
//! a restart (whose use record is gone) are refused as `badNonce`.
//!
//! In the shared table every ACME request would cost a committed INSERT of
//! its own (seven per certificate). One task per node writes them instead:
//! the nonces of requests that arrive while its INSERT is in flight go
//! together in the next one, so under load a commit records many. No request
//! proceeds before its nonce's use is committed.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certhub_store::Dialect;
use certhub_store::sealed::random_bytes;

use super::Problem;
use crate::{App, AppError};

/// Seconds a nonce stays usable.
pub const NONCE_TTL: i64 = 3600;

const ID_LEN: usize = 16;
const MAC_LEN: usize = 16;

pub struct Nonces {
    key: hmac::Key,
    salt: [u8; 16],
    used: Option<Mutex<Used>>,
    /// Shared mode: the queue of the task that records uses (started on
    /// first use, inside the runtime).
    recorder: OnceLock<mpsc::UnboundedSender<UseRecord>>,
}

/// A nonce to record as used, and where to say whether it was fresh.
struct UseRecord {
    nonce: String,
    expires_at: i64,
    fresh: oneshot::Sender<Result<bool, String>>,
}

/// At most this many nonces per INSERT.
const MAX_BATCH: usize = 128;

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("in_memory", &self.used.is_some())
            .finish_non_exhaustive()
    }
}

/// Two generations of used ids, each at least [`NONCE_TTL`] long, so an id is
/// remembered for as long as it could still pass the age check.
#[derive(Default)]
struct Used {
    current: HashSet<[u8; ID_LEN]>,
    previous: HashSet<[u8; ID_LEN]>,
    started: i64,
}

impl Nonces {
    /// The nonce service of `app` (the MAC key is shared by every node).
    pub async fn new(app: &App) -> Result<Nonces, AppError> {
        let secret = app.db().server_secret(app.kek(), "nonce_key").await?;
        let in_memory = app.db().dialect() == Dialect::Sqlite;
        Ok(Nonces::with_key(&secret, in_memory))
    }

    /// For tests and benchmarks: a service over an explicit key.
    pub fn with_key(secret: &[u8], in_memory: bool) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            salt: if in_memory {
                random_bytes::<16>()
            } else {
                [0; 16]
            },
            used: in_memory.then(|| Mutex::new(Used::default())),
            recorder: OnceLock::new(),
        }
    }

    fn mac(&self, id: &[u8; ID_LEN]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"acme-nonce");
        ctx.update(&self.salt);
        ctx.update(id);
        ctx.sign()
    }

    /// A fresh nonce.
    pub fn issue(&self, now: i64) -> String {
        let mut id = [0u8; ID_LEN];
        id[..8].copy_from_slice(&now.to_be_bytes());
        id[8..].copy_from_slice(&random_bytes::<8>());
        let tag = self.mac(&id);
        let mut out = [0u8; ID_LEN + MAC_LEN];
        out[..ID_LEN].copy_from_slice(&id);
        out[ID_LEN..].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Checks the seal and the age (no I/O); returns the nonce id.
    fn open(&self, nonce: &str, now: i64) -> Result<[u8; ID_LEN], Problem> {
        let bad = || {
            Problem::bad_nonce(format!(
                "the nonce {nonce:?} was not issued by this server or has expired; get a fresh one"
            ))
        };
        let raw = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| bad())?;
        if raw.len() != ID_LEN + MAC_LEN {
            return Err(bad());
        }
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&raw[..ID_LEN]);
        let tag = self.mac(&id);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &tag.as_ref()[..MAC_LEN],
            &raw[ID_LEN..],
        )) {
            return Err(bad());
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&id[..8]);
        let issued = i64::from_be_bytes(ts);
        if issued > now + 60 || now - issued > NONCE_TTL {
            return Err(bad());
        }
        Ok(id)
    }

    /// Verifies and uses up a nonce; `badNonce` if it is missing, forged,
    /// expired or used before.
    pub async fn consume(&self, app: &App, nonce: Option<&str>, now: i64) -> Result<(), Problem> {
        let nonce = nonce.ok_or_else(|| Problem::bad_nonce("the JWS has no \"nonce\" header"))?;
        let id = self.open(nonce, now)?;
        let fresh = match &self.used {
            Some(used) => {
                let mut u = used.lock().unwrap_or_else(|e| e.into_inner());
                if now - u.started >= NONCE_TTL {
                    u.previous = std::mem::take(&mut u.current);
                    u.started = now;
                }
                !u.previous.contains(&id) && u.current.insert(id)
            }
            None => self.record_use(app, nonce, now + NONCE_TTL + 60).await?,
        };
        if fresh {
            Ok(())
        } else {
            Err(Problem::bad_nonce(format!(
                "the nonce {nonce:?} was already used"
            )))
        }
    }

    /// Shared mode: records the use through the node's recorder task.
    async fn record_use(&self, app: &App, nonce: &str, expires_at: i64) -> Result<bool, Problem> {
        let queue = self.recorder.get_or_init(|| {
            let (queue, records) = mpsc::unbounded_channel();
            tokio::spawn(record_uses(app.db().clone(), records));
            queue
        });
        let (fresh, answer) = oneshot::channel();
        let record = UseRecord {
            nonce: nonce.to_string(),
            expires_at,
            fresh,
        };
        let gone = || Problem::internal("the nonce recorder stopped");
        queue.send(record).map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|e| Problem::from(certhub_store::StoreError::Busy(e)))
    }

    /// Whether used nonces live in the database (then they need purging).
    pub fn shared(&self) -> bool {
        self.used.is_none()
    }
}

/// The recorder task: one INSERT at a time, each taking every nonce queued
/// meanwhile. A nonce twice in one batch (a replay racing its original) is
/// fresh at most once.
async fn record_uses(db: certhub_store::Db, mut records: mpsc::UnboundedReceiver<UseRecord>) {
    while let Some(first) = records.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match records.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut seen = HashSet::new();
        let (distinct, repeated): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|r| seen.insert(r.nonce.clone()));
        let rows: Vec<(&str, i64)> = distinct
            .iter()
            .map(|r| (r.nonce.as_str(), r.expires_at))
            .collect();
        match db.acme_use_nonces(&rows).await {
            Ok(fresh) => {
                for r in distinct {
                    let _ = r.fresh.send(Ok(fresh.contains(&r.nonce)));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for r in distinct {
                    let _ = r.fresh.send(Err(e.clone()));
                }
            }
        }
        for r in repeated {
            let _ = r.fresh.send(Ok(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uses queued together are one batch: a nonce twice in it (a replay
    /// racing its original) is fresh once; one used before is not fresh.
    #[tokio::test]
    async fn a_batch_records_each_nonce_once() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let db = certhub_store::Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        db.acme_use_nonces(&[("old", 9)]).await.unwrap();
        let (queue, records) = mpsc::unbounded_channel();
        let mut answers = Vec::new();
        for nonce in ["x", "x", "y", "old"] {
            let (fresh, answer) = oneshot::channel();
            queue
                .send(UseRecord {
                    nonce: nonce.into(),
                    expires_at: 9,
                    fresh,
                })
                .unwrap();
            answers.push(answer);
        }
        drop(queue);
        record_uses(db, records).await;
        let mut got = Vec::new();
        for a in answers {
            got.push(a.await.unwrap().unwrap());
        }
        assert_eq!(got, vec![true, false, true, false]);
    }

    #[test]
    fn seals_and_ages() {
        let n = Nonces::with_key(b"k", true);
        let now = 1_800_000_000;
        let a = n.issue(now);
        assert_eq!(a.len(), 43);
        assert!(n.open(&a, now + 10).is_ok());
        assert!(n.open(&a, now + NONCE_TTL + 1).is_err());
        let other = Nonces::with_key(b"k", true);
        assert!(other.open(&a, now).is_err(), "another process's salt");
        let mut tampered = a.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        assert!(
            n.open(std::str::from_utf8(&tampered).unwrap(), now)
                .is_err()
        );
        assert!(n.open("", now).is_err());
    }

    #[test]
    fn memory_mode_is_single_use_across_rotation() {
        let n = Nonces::with_key(b"k", true);
        let now = 1_800_000_000;
        let a = n.issue(now);
        let id = n.open(&a, now).unwrap();
        let used = n.used.as_ref().unwrap();
        {
            let mut u = used.lock().unwrap();
            u.started = now;
            assert!(u.current.insert(id));
            // Rotation keeps the previous generation.
            u.previous = std::mem::take(&mut u.current);
            assert!(u.previous.contains(&id));
        }
    }
}
