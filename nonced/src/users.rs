//! Who is calling. The daemon serves several people: each job has an owner, a user reaches
//! only their own jobs, and an admin reaches every job and `daemon.info`.
//!
//! Users are declared in the config as `[[users]]` tables: `name`, `role` (`user` or
//! `admin`), and `token_sha256` (the hex SHA-256 of their bearer token, never the token
//! itself: tokens are 32 random bytes, so a fast hash is right) and/or `uid` (a local account
//! that reaches the Unix socket). On the Unix socket the peer's uid, from the kernel
//! (SO_PEERCRED), decides: root and the daemon's own uid are admins, a declared uid is its
//! user, any other uid is a user of its own (`uid-<N>`), so local use needs no token.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Starts jobs, and sees, waits on and cancels its own.
    User,
    /// Everything: every job, `daemon.info`.
    Admin,
}

/// The identity a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// The daemon itself (jobs resumed from the journal, internal calls).
    pub fn daemon() -> Caller {
        Caller { name: "nonced".into(), role: Role::Admin }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this caller may see a job owned by `owner` (`None`: a job journaled before
    /// jobs had owners, which only admins see).
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.is_admin() || owner == Some(self.name.as_str())
    }
}

/// One `[[users]]` table of the config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the user's bearer token (`nonced token new NAME` makes one).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// A local account whose connections to the Unix socket act as this user.
    #[serde(default)]
    pub uid: Option<u32>,
    /// This user's own limits, where they differ from `[user_quotas]`.
    #[serde(default)]
    pub quotas: Option<UserQuotasOverride>,
}

/// `[user_quotas]`: what each user (not admins) may use, the coursework report's "service
/// limiting scheme": a user's spend stays in range whatever they ask for. `[[users]]` may
/// override each for one user (`quotas = { ... }`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserQuotas {
    pub max_workers_per_job: usize,
    /// The user's jobs running at once.
    pub max_concurrent_jobs: usize,
    /// Worker threads x seconds per UTC day: a job's deadline is cut to what is left today.
    pub max_vcpu_seconds_per_day: f64,
}

impl Default for UserQuotas {
    fn default() -> Self {
        UserQuotas { max_workers_per_job: 16, max_concurrent_jobs: 2, max_vcpu_seconds_per_day: 86_400.0 }
    }
}

/// One user's exceptions to `[user_quotas]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuotasOverride {
    pub max_workers_per_job: Option<usize>,
    pub max_concurrent_jobs: Option<usize>,
    pub max_vcpu_seconds_per_day: Option<u64>,
}

/// The users a daemon knows, checked once at start.
#[derive(Debug, Clone)]
pub struct Users {
    entries: Vec<(UserEntry, Option<[u8; 32]>)>,
    daemon_uid: u32,
}

impl Users {
    /// Checks the entries: valid unique names, 64-hex-digit token hashes, unique uids.
    pub fn new(entries: &[UserEntry], daemon_uid: u32) -> Result<Users, String> {
        let mut checked = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let ok_name = !e.name.is_empty()
                && e.name.len() <= 64
                && e.name.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
            if !ok_name {
                return Err(format!("users[{i}]: name {:?} must be 1-64 of A-Z a-z 0-9 . _ - @", e.name));
            }
            if entries[..i].iter().any(|o| o.name == e.name) {
                return Err(format!("users[{i}]: the name {:?} is declared twice", e.name));
            }
            if let Some(uid) = e.uid {
                if entries[..i].iter().any(|o| o.uid == Some(uid)) {
                    return Err(format!("users[{i}]: uid {uid} is declared twice"));
                }
            }
            let hash = match &e.token_sha256 {
                None => None,
                Some(h) => {
                    let bytes = hex::decode(h.trim())
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .ok_or_else(|| {
                            format!("users[{i}] ({}): token_sha256 must be 64 hex digits (a SHA-256)", e.name)
                        })?;
                    Some(bytes)
                }
            };
            if hash.is_none() && e.uid.is_none() {
                return Err(format!("users[{i}] ({}): give token_sha256, uid, or both", e.name));
            }
            checked.push((e.clone(), hash));
        }
        Ok(Users { entries: checked, daemon_uid })
    }

    /// The user whose token this is. Every entry is compared, in constant time, whatever
    /// matches: how long it takes says nothing about which hash is near.
    pub fn by_token(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (e, hash) in &self.entries {
            if let Some(h) = hash {
                if constant_time_eq(h, &digest) {
                    found = Some(Caller { name: e.name.clone(), role: e.role });
                }
            }
        }
        found
    }

    /// The caller a local peer with `uid` acts as.
    pub fn by_uid(&self, uid: u32) -> Caller {
        if let Some((e, _)) = self.entries.iter().find(|(e, _)| e.uid == Some(uid)) {
            return Caller { name: e.name.clone(), role: e.role };
        }
        if uid == 0 || uid == self.daemon_uid {
            return Caller { name: format!("uid-{uid}"), role: Role::Admin };
        }
        Caller { name: format!("uid-{uid}"), role: Role::User }
    }
}

/// The users a running daemon knows, replaced whole on SIGHUP: a token taken out of the
/// config stops working at once, without a restart.
/// Each replacement is a new generation: a WebSocket connection or a ticket authenticated
/// in an older one must authenticate again (see [`Session`]).
#[derive(Debug)]
pub struct LiveUsers {
    current: std::sync::RwLock<Arc<Users>>,
    generation: std::sync::atomic::AtomicU64,
}

impl LiveUsers {
    pub fn new(users: Users) -> LiveUsers {
        LiveUsers { current: std::sync::RwLock::new(Arc::new(users)), generation: Default::default() }
    }

    fn current(&self) -> Arc<Users> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// How many times the users were replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Puts `users` in place of the current ones; says who came and went (names only).
    pub fn replace(&self, users: Users) -> (Vec<String>, Vec<String>) {
        let names = |u: &Users| u.entries.iter().map(|(e, _)| e.name.clone()).collect::<Vec<_>>();
        let mut slot = self.current.write().unwrap_or_else(|e| e.into_inner());
        let (before, after) = (names(&slot), names(&users));
        let added = after.iter().filter(|n| !before.contains(n)).cloned().collect();
        let removed = before.iter().filter(|n| !after.contains(n)).cloned().collect();
        *slot = Arc::new(users);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (added, removed)
    }

    /// See [`Users::by_token`].
    pub fn by_token(&self, token: &str) -> Option<Caller> {
        self.current().by_token(token)
    }

    /// See [`Users::by_uid`].
    pub fn by_uid(&self, uid: u32) -> Caller {
        self.current().by_uid(uid)
    }
}

/// Travels with a WebSocket connection's calls beside its `Caller`: the users' generation
/// it was authenticated in. After a SIGHUP replaced the users, its calls are refused until it
/// connects again, so a revoked token or a demoted admin keeps nothing through an open socket.
#[derive(Debug, Clone)]
pub struct Session {
    pub generation: u64,
    pub users: Arc<LiveUsers>,
}

impl Session {
    /// Whether the users have not been replaced since.
    pub fn current(&self) -> bool {
        self.users.generation() == self.generation
    }
}

/// Equality that reads every byte whatever differs.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh token (32 random bytes from the OS, as 64 hex digits) and its SHA-256 in hex.
pub fn new_token() -> (String, String) {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    (token, hash)
}

/// The uid this process runs as (the owner of `/proc/self`; no libc call needed).
pub fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, role: Role, token: Option<&str>, uid: Option<u32>) -> UserEntry {
        UserEntry {
            name: name.into(),
            role,
            token_sha256: token.map(|t| hex::encode(Sha256::digest(t.as_bytes()))),
            uid,
            quotas: None,
        }
    }

    #[test]
    fn tokens_find_their_user_and_nothing_else() {
        let users = Users::new(
            &[
                entry("alice", Role::User, Some("a-token"), None),
                entry("ops", Role::Admin, Some("o-token"), None),
            ],
            1000,
        )
        .expect("valid");
        assert_eq!(users.by_token("a-token"), Some(Caller { name: "alice".into(), role: Role::User }));
        assert_eq!(users.by_token("o-token").map(|c| c.role), Some(Role::Admin));
        assert_eq!(users.by_token("a-token "), None);
        assert_eq!(users.by_token(""), None);
    }

    #[test]
    fn uids_map_to_users_and_root_and_the_daemon_are_admins() {
        let users = Users::new(&[entry("bob", Role::User, None, Some(1001))], 999).expect("valid");
        assert_eq!(users.by_uid(1001).name, "bob");
        assert!(users.by_uid(0).is_admin());
        assert!(users.by_uid(999).is_admin());
        let stranger = users.by_uid(4242);
        assert_eq!((stranger.name.as_str(), stranger.role), ("uid-4242", Role::User));
        assert!(
            stranger.may_see(Some("uid-4242")) && !stranger.may_see(Some("bob")) && !stranger.may_see(None)
        );
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let bad_hash = UserEntry {
            name: "x".into(),
            role: Role::User,
            token_sha256: Some("abc".into()),
            uid: None,
            quotas: None,
        };
        assert!(Users::new(&[bad_hash], 0).expect_err("short hash").contains("64 hex digits"));
        let twice = [entry("a", Role::User, Some("t1"), None), entry("a", Role::User, Some("t2"), None)];
        assert!(Users::new(&twice, 0).expect_err("twice").contains("twice"));
        let nothing =
            UserEntry { name: "n".into(), role: Role::User, token_sha256: None, uid: None, quotas: None };
        assert!(Users::new(&[nothing], 0).is_err());
        let spaces = entry("a b", Role::User, Some("t"), None);
        assert!(Users::new(&[spaces], 0).is_err());
    }

    #[test]
    fn new_tokens_are_random_and_hash_to_what_they_say() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 64);
        let users = Users::new(
            &[UserEntry {
                name: "n".into(),
                role: Role::User,
                token_sha256: Some(h1),
                uid: None,
                quotas: None,
            }],
            0,
        )
        .expect("valid");
        assert_eq!(users.by_token(&t1).map(|c| c.name), Some("n".into()));
    }
}
